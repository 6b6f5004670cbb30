"""The instance-wise pipeline end to end with tiny random-init models: shapes, chunking, cancel, recombine."""

from __future__ import annotations

import numpy as np
import pytest

from deconv_gui.core.cancel import CancelToken
from deconv_gui.core.errors import Cancelled, DeconvGuiError
from deconv_gui.core.synthetic import make_scene
from deconv_gui.inference.pipeline import PipelineOptions, Segmenter, recombine
from deconv_gui.inference.result import SegmentationResult
from deconv_gui.inference.runner import ModelRunner, RunnerOptions, resolve_device
from deconv_gui.proposals.edge_boxes import EdgeBoxConfig, EdgeBoxProposer


@pytest.fixture(scope="module")
def runner(tiny_deconvnet_ckpt) -> ModelRunner:
    return ModelRunner.from_checkpoint(str(tiny_deconvnet_ckpt), RunnerOptions(device="cpu", chunk_size=4))


@pytest.fixture(scope="module")
def scene():
    return make_scene(3, height=240, width=320)


def _boxes(n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    x0 = rng.integers(-20, 200, n)
    y0 = rng.integers(-20, 120, n)
    return np.stack([x0, y0, x0 + rng.integers(60, 160, n), y0 + rng.integers(60, 140, n)], 1).astype(float)


def test_segment_with_edge_boxes_keeps_every_intermediate(runner: ModelRunner, scene) -> None:
    seg = Segmenter(runner, proposer=EdgeBoxProposer(EdgeBoxConfig(top_n=6, min_side=40)))
    raw = seg.segment(scene.image)
    assert not isinstance(raw, SegmentationResult) and raw.aggregated is None  # the network's maps, nothing combined
    result = recombine(raw, scene.image, seg.options)
    n, c = result.num_proposals, runner.num_classes
    assert 1 <= n <= 6
    assert result.boxes.shape == (n, 4) and result.boxes.dtype == np.int64
    assert result.instance_scores.shape == (n, c, 224, 224) and result.instance_scores.dtype == np.float16
    assert result.aggregated.shape == (c, 240, 320)
    assert result.aggregated.min() >= 0.0  # aggregation starts at 0
    np.testing.assert_allclose(result.probabilities.sum(0), 1.0, rtol=1e-5)
    assert result.label.shape == (240, 320) and result.label.dtype == np.uint8
    assert result.mode == "instances" and "network" in result.timings


def test_streamed_aggregation_equals_cached_recombination(runner: ModelRunner, scene) -> None:
    boxes = _boxes(7)
    seg = Segmenter(runner, options=PipelineOptions(keep_instance_scores=False))
    result = seg.run(scene.image, boxes=boxes)  # aggregated on the way, no per-instance maps kept
    assert result.instance_scores is None
    again = recombine(Segmenter(runner).segment(scene.image, boxes=boxes), scene.image, seg.options)
    # cache is float16, so allow its rounding
    np.testing.assert_allclose(again.aggregated, result.aggregated, atol=2e-2 * (1 + np.abs(result.aggregated).max()))
    assert (again.label == result.label).mean() > 0.99
    assert result.from_user.all()


def test_chunks_bound_each_forward(runner: ModelRunner, scene, monkeypatch) -> None:
    sizes: list[int] = []
    original = runner.forward_crops

    def spy(crops):
        sizes.append(len(crops))
        return original(crops)

    monkeypatch.setattr(runner, "forward_crops", spy)
    Segmenter(runner, options=PipelineOptions(keep_instance_scores=False)).segment(scene.image, boxes=_boxes(10))
    assert sizes == [3, 4, 3]  # at most chunk_size (4) per forward, as even as possible


def test_cancel_between_chunks(runner: ModelRunner, scene) -> None:
    token = CancelToken()
    seen: list[int] = []

    def progress(done: int, total: int, stage: str) -> None:
        if stage == "crops":
            seen.append(done)
            if done >= 4:
                token.cancel()

    with pytest.raises(Cancelled):
        Segmenter(runner).segment(scene.image, boxes=_boxes(12), progress=progress, cancel=token)
    assert seen == [0, 4]  # stopped after the first chunk


def test_excluding_proposals_changes_only_their_area(runner: ModelRunner, scene) -> None:
    boxes = np.array([[0, 0, 120, 120], [200, 100, 320, 240]], float)
    seg = Segmenter(runner)
    result = seg.run(scene.image, boxes=boxes)
    only_first = recombine(result, scene.image, seg.options, include=np.array([True, False]))
    assert only_first.aggregated[:, 100:, 200:].max() == 0.0  # second box's area is now uncovered
    np.testing.assert_array_equal(only_first.label[150:, 240:], 0)
    np.testing.assert_allclose(only_first.aggregated[:, :100, :120], result.aggregated[:, :100, :120], atol=0.05)


def test_add_box_runs_only_that_crop(runner: ModelRunner, scene, monkeypatch) -> None:
    seg = Segmenter(runner)
    result = seg.segment(scene.image, boxes=_boxes(3))
    calls: list[int] = []
    original = runner.forward_crops
    monkeypatch.setattr(runner, "forward_crops", lambda crops: calls.append(len(crops)) or original(crops))
    bigger = seg.add_box(result, scene.image, np.array([10, 10, 150, 130]))
    assert calls == [1]
    assert bigger.num_proposals == 4 and bigger.from_user[-1]
    assert recombine(bigger, scene.image, seg.options).include.all()


def test_top_n_keeps_user_boxes(runner: ModelRunner, scene) -> None:
    seg = Segmenter(runner, proposer=EdgeBoxProposer(EdgeBoxConfig(top_n=5, min_side=40)))
    result = seg.segment(scene.image)
    result = seg.add_box(result, scene.image, np.array([0, 0, 100, 100]))
    top1 = recombine(result, scene.image, seg.options, top_n=1)
    assert top1.include.sum() == 2 and top1.include[0] and top1.include[-1]


def test_whole_image_mode_any_size(runner: ModelRunner) -> None:
    image = make_scene(1, height=150, width=205).image
    result = Segmenter(runner, options=PipelineOptions(mode="whole")).run(image)
    assert result.label.shape == (150, 205) and result.num_proposals == 0


def test_ensemble_and_crf_run_with_partner(runner: ModelRunner, tiny_fcn_ckpt, scene) -> None:
    partner = ModelRunner.from_checkpoint(str(tiny_fcn_ckpt), RunnerOptions(device="cpu"))
    boxes = _boxes(3)
    base = Segmenter(runner, partner=partner, options=PipelineOptions(ensemble="off")).run(scene.image, boxes=boxes)
    assert base.partner_scores is None
    mean = Segmenter(runner, partner=partner, options=PipelineOptions(ensemble="mean")).run(scene.image, boxes=boxes)
    assert mean.partner_scores.shape == mean.aggregated.shape
    assert not np.allclose(mean.probabilities, base.probabilities)
    crf = recombine(mean, scene.image, PipelineOptions(ensemble="mean", crf=True))
    assert "crf" in crf.timings and crf.label.shape == mean.label.shape


def test_instance_mask_is_inside_its_box(runner: ModelRunner, scene) -> None:
    result = Segmenter(runner).segment(scene.image, boxes=np.array([[50, 40, 150, 160]], float))
    mask, cls, prob = result.instance_mask(0)
    assert mask.shape == (240, 320)
    assert not mask[:40].any() and not mask[:, :50].any() and not mask[160:].any()
    assert 0 <= cls < runner.num_classes and 0.0 <= prob <= 1.0


def test_cuda_request_without_gpu_is_a_clear_error() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeconvGuiError, match="CUDA"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def test_whole_image_base_when_class_zero_is_not_background(runner: ModelRunner, scene) -> None:
    from deconv_gui.inference.pipeline import uses_whole_image_base

    assert not uses_whole_image_base("auto", ["background", "car"])
    assert uses_whole_image_base("auto", ["Sky", "Building"])
    assert uses_whole_image_base("whole", ["background"]) and not uses_whole_image_base("zeros", ["Sky"])
    boxes = _boxes(3)
    plain = Segmenter(runner, options=PipelineOptions(base="zeros")).run(scene.image, boxes=boxes)
    based = Segmenter(runner, options=PipelineOptions(base="whole", keep_instance_scores=False)).run(
        scene.image, boxes=boxes)
    assert plain.base_scores is None
    whole = runner.whole_image_scores(scene.image)
    np.testing.assert_allclose(based.base_scores, whole, rtol=1e-5, atol=1e-5)
    covered = np.zeros(scene.image.shape[:2], bool)
    for x0, y0, x1, y1 in based.boxes:
        covered[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
    np.testing.assert_allclose(based.aggregated[:, ~covered], whole[:, ~covered], rtol=1e-5, atol=1e-5)
    assert (based.aggregated >= whole - 1e-5).all()  # max aggregation never goes below its start
    # recombination from the per-instance maps starts from the same base
    again = recombine(Segmenter(runner, options=PipelineOptions(base="whole")).segment(scene.image, boxes=boxes),
                      scene.image, PipelineOptions(base="whole"))
    np.testing.assert_allclose(again.aggregated, based.aggregated, rtol=1e-4, atol=1e-3)


def test_chunk_bounds_are_even_and_cover_everything() -> None:
    from deconv_gui.inference.pipeline import chunk_bounds

    assert chunk_bounds(0, 8) == []
    assert chunk_bounds(5, 8) == [(0, 5)]
    sizes = [b - a for a, b in chunk_bounds(50, 8)]
    assert len(sizes) == 7 and max(sizes) <= 8 and min(sizes) >= 7 and sum(sizes) == 50
    bounds = chunk_bounds(17, 4)
    assert bounds[0][0] == 0 and bounds[-1][1] == 17
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))


def test_auto_precision_uses_bf16_only_on_cpus_with_native_bf16(monkeypatch) -> None:
    import torch

    from deconv_gui.inference import runner as runner_module

    cpu = torch.device("cpu")
    monkeypatch.setattr(runner_module, "cpu_has_native_bf16", lambda: True)
    assert runner_module.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(runner_module, "cpu_has_native_bf16", lambda: False)
    assert runner_module.resolve_precision("auto", cpu) == "fp32"
    assert runner_module.resolve_precision("fp32", cpu) == "fp32"
    assert runner_module.resolve_precision("auto", torch.device("cuda")) == "fp16"
    with pytest.raises(DeconvGuiError, match="unknown precision"):
        runner_module.resolve_precision("int8", cpu)
