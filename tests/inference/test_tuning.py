"""tune-ensemble / tune-crf: the weighted rule by hand, a known CRF optimum, and the choice stored and used."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deconv_gui.core.aggregation import softmax
from deconv_gui.core.synthetic import SYNTHETIC_CLASSES, make_scene
from deconv_gui.inference.tuning import CachedImage, crf_grid, ensemble_grid
from deconv_gui.io.checkpoints import load_checkpoint
from deconv_gui.postprocess.crf import CRFParams
from deconv_gui.postprocess.ensemble import ensemble_probabilities


def test_weighted_rule_by_hand() -> None:
    a = np.array([[[2.0]], [[0.0]]], np.float32)  # softmax → (0.881, 0.119)
    b = np.array([[[0.0]], [[1.0]]], np.float32)  # softmax → (0.269, 0.731)
    pa, pb = softmax(a), softmax(b)
    got = ensemble_probabilities(a, b, "weighted", 0.75)
    np.testing.assert_allclose(got, 0.75 * pa + 0.25 * pb, rtol=1e-6)
    np.testing.assert_allclose(got[:, 0, 0], [0.75 * 0.8808 + 0.25 * 0.2689, 0.75 * 0.1192 + 0.25 * 0.7311],
                               atol=1e-4)
    np.testing.assert_allclose(ensemble_probabilities(a, b, "weighted", 0.5), ensemble_probabilities(a, b, "mean"))
    np.testing.assert_allclose(ensemble_probabilities(a, b, "weighted", 1.0), pa, rtol=1e-6)
    with pytest.raises(ValueError, match="weight"):
        ensemble_probabilities(a, b, "weighted", 1.5)


def _two_region_case(seed: int) -> CachedImage:
    """Left half class 0 (dark), right half class 1 (bright); scores right on average, 25 % of pixels flipped."""
    rng = np.random.default_rng(seed)
    h, w = 40, 60
    target = np.zeros((h, w), np.uint8)
    target[:, w // 2:] = 1
    image = np.where(target[..., None] == 1, 200, 40).astype(np.uint8).repeat(3, axis=2)
    flip = rng.random((h, w)) < 0.25
    noisy = np.where(flip, 1 - target, target)
    scores = np.stack([(noisy == 0) * 1.0, (noisy == 1) * 1.0]).astype(np.float16)
    return CachedImage(image, target, scores, None)


def test_crf_grid_finds_the_known_optimum() -> None:
    cache = [_two_region_case(s) for s in range(3)]
    edge_aware = CRFParams(gaussian_weight=1.0, bilateral_sxy=10.0, bilateral_srgb=10.0, bilateral_weight=5.0,
                           iterations=5, normalization="symmetric")
    colour_blind = CRFParams(gaussian_weight=1.0, bilateral_sxy=10.0, bilateral_srgb=1000.0, bilateral_weight=5.0,
                             iterations=5, normalization="symmetric")
    too_weak = CRFParams(gaussian_weight=0.01, bilateral_weight=0.01, iterations=5, normalization="symmetric")
    rows = crf_grid(cache, 2, [too_weak, colour_blind, edge_aware])
    by_name = {None: rows[0][1], "weak": rows[1][1], "blind": rows[2][1], "aware": rows[3][1]}
    assert by_name[None] < 0.7  # the noise costs a third of the IoU
    assert by_name["aware"] > 0.95  # the colour edge tells the CRF where the boundary is
    assert by_name["aware"] > by_name["blind"] > by_name[None]
    assert abs(by_name["weak"] - by_name[None]) < 0.05
    assert max(rows, key=lambda r: r[1])[0] == edge_aware


def test_ensemble_grid_scores_every_weight() -> None:
    item = _two_region_case(0)
    perfect = np.stack([(item.target == 0) * 4.0, (item.target == 1) * 4.0]).astype(np.float16)
    rows = ensemble_grid([CachedImage(item.image, item.target, item.scores, perfect)], 2)
    weights = [w for rule, w, _ in rows if rule == "weighted"]
    assert weights == [round(0.1 * k, 1) for k in range(11)]
    scores = {w: m for rule, w, m in rows if rule == "weighted"}
    assert scores[0.0] == pytest.approx(1.0) and scores[1.0] < 0.7  # the partner is the perfect one here


def _folder_dataset(root: Path, n: int = 2) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for seed in range(n):
        s = make_scene(20 + seed, height=96, width=128)
        Image.fromarray(s.image).save(root / "images" / f"s{seed}.png")
        Image.fromarray(s.semantic).save(root / "masks" / f"s{seed}.png")
    (root / "classes.txt").write_text("\n".join(SYNTHETIC_CLASSES))
    return root


def test_tune_commands_store_their_choice_and_the_pipeline_uses_it(
        tiny_deconvnet_ckpt: Path, tiny_fcn_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from deconv_gui.cli import _make_segmenter, build_parser, main

    data = _folder_dataset(tmp_path / "ds")
    weights = tmp_path / "deconv.pt"
    shutil.copyfile(tiny_deconvnet_ckpt, weights)
    common = ["--data", str(data), "--format", "folder", "--weights", str(weights), "--device", "cpu",
              "--mode", "whole"]
    assert main(["tune-ensemble", *common, "--partner", str(tiny_fcn_ckpt)]) == 0
    out = capsys.readouterr().out
    assert "mean (paper)" in out and "best:" in out
    _, meta = load_checkpoint(weights)
    assert meta.ensemble["chosen_on"] == "val" and 0.0 <= meta.ensemble["weight"] <= 1.0
    args = build_parser().parse_args(["segment", "x.png", "--out", str(tmp_path), "--weights", str(weights),
                                      "--partner", str(tiny_fcn_ckpt)])
    options = _make_segmenter(args).options
    assert options.ensemble == "weighted" and options.ensemble_weight == meta.ensemble["weight"]

    assert main(["tune-crf", *common, "--partner", str(tiny_fcn_ckpt), "--out", str(tmp_path / "tuned.pt")]) == 0
    out = capsys.readouterr().out
    assert "(no CRF)" in out and out.count("symmetric") == 12  # the small grid, each row printed
    _, tuned = load_checkpoint(tmp_path / "tuned.pt")
    assert tuned.crf["chosen_on"] == "val"
    _, original = load_checkpoint(weights)
    assert original.crf == {}  # --out leaves --weights alone
