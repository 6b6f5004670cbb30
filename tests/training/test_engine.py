"""The training engine on tiny models and synthetic trees: loss goes down for each stage, files and metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from deconv_gui.training.checkpointing import capture_rng, init_weights, load_state, restore_rng
from deconv_gui.training.config import build_config
from deconv_gui.training.engine import run_training
from deconv_gui.training.optim import SegmentationLoss, lr_factor, parameter_groups
from deconv_gui.training.precise_bn import recompute_bn_stats
from deconv_gui.training.sampling import StepBatches

TRAIN_KEYS = {"kind", "iteration", "max_iterations", "epoch", "loss", "lr", "pixel_acc", "images_per_s", "eta_s",
              "time"}
VAL_KEYS = {"kind", "iteration", "miou", "pixel_acc", "class_iou", "time"}
EVENT_KEYS = {"kind", "event", "iteration", "path", "message", "time"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deconv_gui.training.synthetic_tree import write_synthetic_tree

    return write_synthetic_tree(tmp_path_factory.mktemp("tree") / "data", "folder", n_train=2, n_val=2,
                                height=96, width=128, seed=3)


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _train(tree: Path, run_dir: Path, **values) -> list[dict]:
    cfg = build_config({}, {"data": str(tree), "format": "folder", "run_dir": str(run_dir), "log_every": 1,
                            "val_every": 0, "checkpoint_every": 1000, "grad_accum": 1, **values})
    result = run_training(cfg)
    assert result.status == "finished"
    return _records(run_dir)


def _losses(records: list[dict]) -> list[float]:
    return [r["loss"] for r in records if r["kind"] == "train"]


def _assert_loss_drops(losses: list[float]) -> None:
    first, last = np.mean(losses[:2]), np.mean(losses[-2:])
    assert all(math.isfinite(v) for v in losses)
    assert last < 0.95 * first, losses


def test_whole_image_training_lowers_loss_and_writes_a_usable_run(tree: Path, tmp_path: Path) -> None:
    run = tmp_path / "fcn"
    records = _train(tree, run, arch="fcn8s", width=0.0625, stage="whole", iterations=12, batch_size=2,
                     crop=[96, 128], lr=0.05, val_every=6, class_weighting="linknet", fp16_export=True)
    _assert_loss_drops(_losses(records))
    kinds = {"train": TRAIN_KEYS, "val": VAL_KEYS, "event": EVENT_KEYS}
    for r in records:
        assert set(r) == kinds[r["kind"]], r
    train = [r for r in records if r["kind"] == "train"]
    assert [r["iteration"] for r in train] == list(range(1, 13))
    assert train[-1]["eta_s"] == 0 and train[-1]["max_iterations"] == 12 and train[0]["lr"] == pytest.approx(0.05)
    events = [r["event"] for r in records if r["kind"] == "event"]
    assert events[0] == "started" and events[-1] == "finished" and "best" in events
    vals = [r for r in records if r["kind"] == "val"]
    assert [v["iteration"] for v in vals] == [6, 12]
    assert set(vals[0]["class_iou"]) == {"background", "disc", "square", "triangle", "ring", "cross"}
    for name in ("state.pt", "best.pt", "final.pt", "config.yaml", "train.log"):
        assert (run / name).is_file(), name
    assert load_state(run)["iteration"] == 12

    from deconv_gui.core.synthetic import make_scene
    from deconv_gui.inference.runner import ModelRunner, RunnerOptions
    from deconv_gui.models.registry import model_from_checkpoint

    stored = torch.load(run / "final.pt", weights_only=True)["state_dict"]
    assert {t.dtype for t in stored.values() if t.is_floating_point()} == {torch.float16}  # fp16_export
    model, meta = model_from_checkpoint(run / "final.pt")
    assert meta.architecture == "fcn8s" and meta.train_config["iterations"] == 12
    assert meta.metrics["iteration"] == 12 and "miou" in meta.metrics
    runner = ModelRunner(model, meta, RunnerOptions(device="cpu"))
    scores = runner.whole_image_scores(make_scene(5, height=96, width=128).image)
    assert scores.shape == (6, 96, 128) and np.isfinite(scores).all()


def test_stage1_then_stage2_from_its_weights_lower_loss(tree: Path, tmp_path: Path, tiny_fcn_ckpt: Path) -> None:
    from deconv_gui.core.errors import CheckpointError

    common = {"arch": "deconvnet", "width": 0.0625, "iterations": 6, "batch_size": 2, "resize": 232, "lr": 0.05}
    s1 = _losses(_train(tree, tmp_path / "s1", stage="stage1", **common))
    _assert_loss_drops(s1)
    s2 = _losses(_train(tree, tmp_path / "s2", stage="stage2", init=str(tmp_path / "s1" / "final.pt"),
                        proposal_cache=str(tmp_path / "proposals"), iou_threshold=0.3, **common))
    assert s2[0] < s1[0]  # stage 2 starts from the trained stage-1 weights, not from scratch
    # Stage 2's few noisy steps: judge by the loss of fixed stage-2 samples before (stage 1's weights) and after.
    from deconv_gui.models.registry import model_from_checkpoint
    from deconv_gui.proposals.edge_boxes import EdgeBoxConfig
    from deconv_gui.training.datasets import open_dataset
    from deconv_gui.training.evaluation import Normalizer
    from deconv_gui.training.proposal_cache import ProposalCache
    from deconv_gui.training.samples import Stage2Crops

    ds = open_dataset(tree, "folder", "train")
    cache = ProposalCache(tmp_path / "proposals_eval", EdgeBoxConfig(top_n=200, min_side=0.0))
    items = Stage2Crops(ds, cache, iou_threshold=0.3, resize=232, seed=0)
    batch = [items[i] for i in range(min(4, len(items)))]
    x = Normalizer([0.485, 0.456, 0.406], [0.229, 0.224, 0.225], torch.device("cpu"), False)(
        torch.stack([b[0] for b in batch]))
    y = torch.stack([b[1] for b in batch])

    def fixed_loss(path: Path) -> float:
        model, _ = model_from_checkpoint(path)
        with torch.no_grad():
            return SegmentationLoss()(model.train()(x), y).item()

    assert fixed_loss(tmp_path / "s2" / "final.pt") < fixed_loss(tmp_path / "s1" / "final.pt")
    names = ["background", "disc", "square", "triangle", "ring", "cross"]
    with pytest.raises(CheckpointError, match="fcn8s"):
        init_weights(tiny_fcn_ckpt, architecture="deconvnet", width=0.0625, class_names=names)


def test_parameter_groups_skip_decay_on_biases_and_bn() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))
    decay, no_decay = parameter_groups(model, 5e-4)
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[2].weight)}
    assert len(no_decay["params"]) == 4  # two conv biases, BN weight and bias


def test_lr_schedules() -> None:
    step = build_config({}, {"stage": "stage1"})
    assert lr_factor(0, step) == 1.0 and lr_factor(8999, step) == 1.0
    assert lr_factor(9000, step) == pytest.approx(0.1) and lr_factor(18000, step) == pytest.approx(0.01)
    poly = build_config({}, {"arch": "pspnet", "iterations": 100, "warmup_iterations": 10})
    assert lr_factor(0, poly) == pytest.approx(0.1)
    assert lr_factor(50, poly) == pytest.approx(0.5**0.9)
    assert lr_factor(100, poly) == 0.0


def test_loss_ignores_void_and_adds_aux() -> None:
    target = torch.full((1, 4, 4), 255)
    target[0, 0, 0] = 1
    logits = torch.zeros(1, 3, 4, 4)
    logits[0, 1, 0, 0] = 10.0
    loss = SegmentationLoss(aux_weight=0.4)
    assert loss({"out": logits}, target).item() < 1e-3  # only the one labelled pixel counts
    aux = torch.zeros(1, 3, 4, 4)
    assert loss({"out": logits, "aux": aux}, target).item() == pytest.approx(0.4 * math.log(3), abs=1e-3)
    assert loss({"out": logits}, torch.full((1, 4, 4), 255)).item() == 0.0


def _positions(sampler: StepBatches) -> list[list[tuple[int, int]]]:
    return [list(b) for b in sampler]


def test_data_order_is_resumable_and_shards_across_ranks() -> None:
    full = _positions(StepBatches(10, batch_size=2, grad_accum=2, seed=1, start_step=0, end_step=6))
    tail = _positions(StepBatches(10, batch_size=2, grad_accum=2, seed=1, start_step=2, end_step=6))
    assert tail == full[4:]
    epoch0 = [i for e, i in sum(full[:5], []) if e == 0]
    assert sorted(epoch0) == list(range(10))  # every sample once per epoch
    assert full != _positions(StepBatches(10, batch_size=2, grad_accum=2, seed=2, start_step=0, end_step=6))
    ranks = [_positions(StepBatches(10, batch_size=2, grad_accum=1, seed=1, start_step=0, end_step=3, rank=r,
                                    world_size=2)) for r in range(2)]
    single = _positions(StepBatches(10, batch_size=4, grad_accum=1, seed=1, start_step=0, end_step=3))
    for step in range(3):
        assert sorted(ranks[0][step] + ranks[1][step]) == sorted(single[step])
        assert not set(ranks[0][step]) & set(ranks[1][step])


def test_precise_bn_averages_batch_statistics() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).eval()
    batches = [torch.randn(2, 3, 5, 5) + k for k in range(4)]
    used = recompute_bn_stats(model, iter(batches), 3)
    assert used == 3 and not model.training
    with torch.no_grad():
        means = torch.stack([model[0](b).mean(dim=(0, 2, 3)) for b in batches[:3]])
    assert torch.allclose(model[1].running_mean, means.mean(0), atol=1e-5)
    assert model[1].momentum == 0.1


def test_rng_states_round_trip_through_a_safe_file(tmp_path: Path) -> None:
    import random

    state = capture_rng()
    torch.save(state, tmp_path / "rng.pt")
    loaded = torch.load(tmp_path / "rng.pt", weights_only=True)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng(loaded)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1]) and expected[2] == again[2]


def test_instances_val_mode_scores_the_injected_pipeline(tree: Path, tmp_path: Path) -> None:
    from deconv_gui.core.errors import DeconvGuiError
    from deconv_gui.training.datasets import open_dataset

    values = {"data": str(tree), "format": "folder", "arch": "fcn8s", "width": 0.0625, "iterations": 1,
              "batch_size": 1, "crop": [64, 64], "val_mode": "instances", "run_dir": str(tmp_path / "a")}
    with pytest.raises(DeconvGuiError, match="instances"):
        run_training(build_config({}, values))
    calls = []

    def labeler(model: nn.Module, meta, device: torch.device):  # noqa: ANN001, ANN202
        assert meta.class_names[0] == "background" and isinstance(model, nn.Module)
        calls.append(device)
        return lambda image: np.zeros(image.shape[:2], np.int64)  # "everything is background"

    values["run_dir"] = str(tmp_path / "b")
    run_training(build_config({}, values), instance_labeler=labeler)
    val = next(r for r in _records(tmp_path / "b") if r["kind"] == "val")
    labels = [open_dataset(tree, "folder", "val").label(i) for i in range(2)]
    background = sum(int((lab == 0).sum()) for lab in labels) / sum(int((lab != 255).sum()) for lab in labels)
    assert calls and val["pixel_acc"] == pytest.approx(background)


def test_first_signal_requests_a_stop_and_a_second_sigint_aborts() -> None:
    import os
    import signal

    from deconv_gui.training.engine import StopRequest

    before = signal.getsignal(signal.SIGINT)
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.signal_name == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_a_run_started_with_init_carries_its_proposal_settings_on(tree: Path, tmp_path: Path,
                                                                  tiny_fcn_ckpt: Path) -> None:
    """A CamVid model fine-tuned with --init keeps the Edge Box settings its start carried (object sizes belong
    to the data); a run from scratch has none (the pipeline's VOC defaults)."""
    from deconv_gui.io.checkpoints import copy_checkpoint, load_checkpoint, update_checkpoint_meta

    start = tmp_path / "start.pt"
    copy_checkpoint(tiny_fcn_ckpt, start)
    update_checkpoint_meta(start, {"proposals": {"min_side": 24.0, "top_n": 7}})
    common = {"arch": "fcn8s", "width": 0.125, "stage": "whole", "iterations": 1, "batch_size": 1,
              "crop": [64, 64]}
    _train(tree, tmp_path / "tuned", init=str(start), **common)
    assert load_checkpoint(tmp_path / "tuned" / "final.pt")[1].proposals == {"min_side": 24.0, "top_n": 7}
    _train(tree, tmp_path / "scratch", **common)
    assert load_checkpoint(tmp_path / "scratch" / "final.pt")[1].proposals == {}
