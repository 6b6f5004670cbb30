"""CombineCache: torch pasting and incremental max-aggregation equal the numpy reference; CRF kernels kept."""

from __future__ import annotations

import numpy as np
import pytest

from deconv_gui.core.aggregation import aggregate_instances
from deconv_gui.inference import combine as combine_module
from deconv_gui.inference.combine import CombineCache
from deconv_gui.inference.pipeline import PipelineOptions, recombine
from deconv_gui.inference.result import RawMaps

H, W, C, S = 60, 80, 4, 16


def _raw(n: int = 9, seed: int = 0, base: bool = True) -> RawMaps:
    rng = np.random.default_rng(seed)
    x0 = rng.integers(-15, 70, n)
    y0 = rng.integers(-15, 50, n)
    boxes = np.stack([x0, y0, x0 + rng.integers(8, 50, n), y0 + rng.integers(8, 40, n)], 1).astype(np.int64)
    boxes[-1] = [-40, -40, -5, -5]  # entirely outside the image: never contributes
    return RawMaps(
        image_hw=(H, W), class_names=[f"c{k}" for k in range(C)], palette=np.zeros((C, 3), np.uint8),
        boxes=boxes, proposal_scores=np.linspace(1, 0.1, n).astype(np.float32),
        instance_scores=rng.normal(0, 2, (n, C, S, S)).astype(np.float16), from_user=np.zeros(n, bool),
        base_scores=rng.normal(0, 1, (C, H, W)).astype(np.float32) if base else None,
    )


@pytest.mark.parametrize("mode", ["max", "sum"])
@pytest.mark.parametrize("base", [True, False])
def test_every_toggle_sequence_equals_the_numpy_reference(mode: str, base: bool) -> None:
    raw = _raw(base=base)
    cache = CombineCache(raw, np.zeros((H, W, 3), np.uint8))
    rng = np.random.default_rng(1)
    include = np.ones(raw.num_proposals, bool)
    for step in range(12):  # single toggles (incremental), then bigger changes (full passes)
        flips = rng.choice(raw.num_proposals, 1 if step < 8 else 5, replace=False)
        include[flips] = ~include[flips]
        got = cache.aggregate(include, mode)  # type: ignore[arg-type]
        want = aggregate_instances(raw.instance_scores, raw.boxes, raw.image_hw, mode=mode, include=include,  # type: ignore[arg-type]
                                   initial=raw.base_scores)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4, err_msg=f"step {step}")


def test_a_single_untick_redoes_only_its_box(monkeypatch) -> None:
    raw = _raw(base=True)
    cache = CombineCache(raw, np.zeros((H, W, 3), np.uint8))
    include = np.ones(raw.num_proposals, bool)
    cache.aggregate(include)
    folded: list[int] = []
    original = CombineCache._fold

    def spy(self, acc, index, mode, region=None):  # noqa: ANN001, ANN202
        folded.append(index)
        return original(self, acc, index, mode, region)

    monkeypatch.setattr(CombineCache, "_fold", spy)
    include[0] = False
    cache.aggregate(include)
    assert 0 not in folded and len(folded) == include.sum()  # every other proposal, within box 0's window only
    folded.clear()
    monkeypatch.setattr(combine_module, "INCREMENTAL_AREA", 0.0)  # too big a change: a full pass
    include[1] = False
    cache.aggregate(include)
    assert sorted(folded) == sorted(np.flatnonzero(include).tolist())


def test_recombine_builds_the_crf_kernels_once_per_image(monkeypatch) -> None:
    from deconv_gui.postprocess import crf as crf_module

    raw = _raw()
    image = np.random.default_rng(2).integers(0, 255, (H, W, 3), dtype=np.uint8)
    built: list[int] = []
    original = crf_module._build_kernels
    monkeypatch.setattr(crf_module, "_build_kernels", lambda *a: built.append(1) or original(*a))
    cache = CombineCache(raw, image)
    options = PipelineOptions(crf=True)
    first = recombine(raw, image, options, cache=cache)
    include = np.ones(raw.num_proposals, bool)
    include[2] = False
    second = recombine(raw, image, options, include=include, cache=cache)
    assert len(built) == 1
    alone = recombine(raw, image, options, include=include)  # no cache: same answer
    np.testing.assert_allclose(second.probabilities, alone.probabilities, atol=1e-5)
    assert not np.allclose(first.probabilities, second.probabilities)


def test_a_cache_follows_new_partner_scores_but_not_new_maps() -> None:
    raw = _raw()
    cache = CombineCache(raw, np.zeros((H, W, 3), np.uint8))
    from dataclasses import replace

    partnered = replace(raw, partner_scores=np.zeros((C, H, W), np.float32))
    assert cache.serving(partnered) is cache and cache.raw is partnered
    more = replace(raw, instance_scores=raw.instance_scores.copy())
    assert cache.serving(more) is not cache


def test_a_cache_for_an_added_box_carries_the_old_ones_over() -> None:
    from dataclasses import replace

    raw = _raw(base=True)
    cache = CombineCache(raw, np.zeros((H, W, 3), np.uint8))
    include = np.ones(raw.num_proposals, bool)
    include[3] = False
    cache.aggregate(include)
    extra = np.random.default_rng(5).normal(0, 2, (1, C, S, S)).astype(np.float16)
    grown = replace(raw, boxes=np.concatenate([raw.boxes, [[5, 5, 50, 40]]]),
                    instance_scores=np.concatenate([raw.instance_scores, extra]),
                    from_user=np.append(raw.from_user, True), appended_to=id(raw.instance_scores))
    fresh = cache.serving(grown)
    assert fresh is not cache and len(fresh._patches) == len(cache._patches)
    stranger = replace(grown, appended_to=None)  # the same numbers from elsewhere: nothing carried over
    assert not cache.serving(stranger)._patches
    include = np.append(include, True)
    want = aggregate_instances(grown.instance_scores, grown.boxes, grown.image_hw, include=include,
                               initial=grown.base_scores)
    np.testing.assert_allclose(fresh.aggregate(include), want, rtol=1e-5, atol=1e-4)


def test_crf_marginals_kept_ahead_equal_a_fresh_crf(scene_folder, tiny_deconvnet_ckpt):
    from deconv_gui.inference.pipeline import PipelineOptions, Segmenter, recombine
    from deconv_gui.inference.runner import ModelRunner, RunnerOptions
    from deconv_gui.io.images import read_image
    from deconv_gui.proposals.edge_boxes import EdgeBoxConfig, EdgeBoxProposer

    image = read_image(sorted(scene_folder.iterdir())[0])
    runner = ModelRunner.from_checkpoint(str(tiny_deconvnet_ckpt), RunnerOptions(device="cpu"))
    proposer = EdgeBoxProposer(EdgeBoxConfig(top_n=5, min_side=24, min_box_area=200))
    raw = Segmenter(runner, proposer=proposer, options=PipelineOptions(keep_instance_scores=True)).segment(image)
    cache = CombineCache(raw, image)
    crf = PipelineOptions(crf=True)
    include = np.ones(raw.num_proposals, bool)
    include[0] = False
    ahead = recombine(raw, image, crf, include=include, cache=cache)
    again = recombine(raw, image, crf, include=include, cache=cache)  # from the kept marginals
    fresh = recombine(raw, image, crf, include=include)
    assert again.probabilities is ahead.probabilities
    np.testing.assert_allclose(again.probabilities, fresh.probabilities, atol=1e-6)
    other = recombine(raw, image, crf, cache=cache)  # another include set: refined anew
    assert other.probabilities is not ahead.probabilities
