"""Training samples: whole-image crops, val images, stage-1 instance windows, stage-2 proposal windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deconv_gui.core.boxes import box_iou, enlarge_boxes
from deconv_gui.core.errors import DatasetError
from deconv_gui.core.synthetic import make_scene
from deconv_gui.io.label_maps import write_index_png
from deconv_gui.training.datasets import open_dataset
from deconv_gui.training.proposal_cache import ProposalCache
from deconv_gui.training.samples import (
    EvalImages,
    Stage1Crops,
    Stage2Crops,
    WholeImageSamples,
    background_class,
    stage1_label,
    warp_window,
)
from deconv_gui.training.synthetic_tree import write_synthetic_tree

H, W = 96, 128


@pytest.fixture(scope="module")
def folder_ds(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    root = write_synthetic_tree(tmp_path_factory.mktemp("samples") / "folder", "folder", n_train=3, n_val=1,
                                height=H, width=W)
    return open_dataset(root, "folder", "train", cache_images=True)


def _same(a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]) -> bool:
    return torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_whole_image_shapes_and_determinism(folder_ds) -> None:  # noqa: ANN001
    samples = WholeImageSamples(folder_ds, crop=(64, 80), scale=(0.5, 2.0), rotate=10.0, seed=3)
    assert len(samples) == 3
    image, label = samples[1]
    assert image.shape == (3, 64, 80) and image.dtype == torch.uint8
    assert label.shape == (64, 80) and label.dtype == torch.int64
    assert set(label.unique().tolist()) <= {0, 1, 2, 3, 4, 5, 255}
    again = WholeImageSamples(folder_ds, crop=(64, 80), scale=(0.5, 2.0), rotate=10.0, seed=3)
    assert _same(samples[1], again[1])
    samples.set_epoch(1)
    assert not _same(samples[1], again[1])
    again.set_epoch(1)
    assert _same(samples[1], again[1])
    other_seed = WholeImageSamples(folder_ds, crop=(64, 80), rotate=10.0, seed=4)
    other_seed.set_epoch(1)
    assert not _same(samples[1], other_seed[1])


def test_whole_image_pads_with_void(folder_ds) -> None:  # noqa: ANN001
    # scale 0.5 makes a 48×64 image; a 64×80 crop must pad 16 rows and 16 columns.
    samples = WholeImageSamples(folder_ds, crop=(64, 80), scale=(0.5, 0.5), flip=False)
    image, label = samples[0]
    assert torch.all(label[48:] == 255) and torch.all(label[:, 64:] == 255)
    assert torch.all(image[:, 48:] == 0) and torch.all(image[:, :, 64:] == 0)
    assert not torch.any(label[:48, :64] == 255)
    scene = make_scene(0, height=H, width=W)
    assert np.array_equal(label[:48, :64].numpy(), scene.semantic[::2, ::2])


def test_whole_image_identity_and_flip(folder_ds) -> None:  # noqa: ANN001
    scene = make_scene(2, height=H, width=W)
    plain = WholeImageSamples(folder_ds, crop=(H, W), scale=(1.0, 1.0), flip=False)
    image, label = plain[2]
    assert np.array_equal(label.numpy(), scene.semantic)
    assert np.array_equal(image.permute(1, 2, 0).numpy(), scene.image)
    flips = WholeImageSamples(folder_ds, crop=(H, W), scale=(1.0, 1.0), flip=True)
    seen = set()
    for epoch in range(8):
        flips.set_epoch(epoch)
        lab = flips[2][1].numpy()
        assert np.array_equal(lab, scene.semantic) or np.array_equal(lab, scene.semantic[:, ::-1])
        seen.add(np.array_equal(lab, scene.semantic))
    assert seen == {True, False}


def test_eval_images_are_unchanged(folder_ds) -> None:  # noqa: ANN001
    images = EvalImages(folder_ds, limit=2)
    assert len(images) == 2
    image, label = images[1]
    item = folder_ds[1]
    assert np.array_equal(image.permute(1, 2, 0).numpy(), item.image)
    assert np.array_equal(label.numpy(), item.label) and label.dtype == torch.int64
    images.set_epoch(5)
    assert _same(images[1], (image, label))
    with pytest.raises(IndexError):
        images[2]


def test_dataloader_batches(folder_ds) -> None:  # noqa: ANN001
    loader = torch.utils.data.DataLoader(WholeImageSamples(folder_ds, crop=32), batch_size=3)
    images, labels = next(iter(loader))
    assert images.shape == (3, 3, 32, 32) and labels.shape == (3, 32, 32)


def test_tree_files_are_not_modified(folder_ds) -> None:  # noqa: ANN001
    before = {p: p.stat().st_mtime_ns for p in Path(folder_ds.root).rglob("*")}
    WholeImageSamples(folder_ds, crop=32)[0]
    assert {p: p.stat().st_mtime_ns for p in Path(folder_ds.root).rglob("*")} == before


# ------------------------------------------------------------------------------------------ stage 1

def test_stage1_one_item_per_instance_and_only_that_class(folder_ds) -> None:  # noqa: ANN001
    crops = Stage1Crops(folder_ds, resize=64, crop=56, progress=False)
    expected = [(i, k) for i in range(len(folder_ds)) for k in range(len(folder_ds[i].instances))]
    assert [tuple(r) for r in crops.index.tolist()] == expected
    for n, (i, k) in enumerate(expected):
        image, label = crops[n]
        assert image.shape == (3, 56, 56) and label.shape == (56, 56) and label.dtype == torch.int64
        cls = folder_ds[i].instances[k].class_id
        values = set(label.unique().tolist())
        assert cls in values and values <= {0, cls, 255}


def _border_dataset(tmp_path: Path, classes: list[str], fmt: str = "folder"):  # noqa: ANN202
    """One 60×80 image: class 1 square touching the left border (x 0..20), class 2 square, class 3 strip."""
    label = np.zeros((60, 80), np.uint8)
    label[20:40, 0:20] = 1
    label[22:38, 20:30] = 2   # another object next to it
    label[50:60, :] = 3
    image = np.full((60, 80, 3), 200, np.uint8)
    root = tmp_path / fmt
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.fromarray(image).save(root / "images" / "a.png")
    write_index_png(root / "masks" / "a.png", label)
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    (root / "train.txt").write_text("a\n")
    return open_dataset(root, "folder", "train"), label


def test_stage1_window_past_the_border_is_void(tmp_path: Path) -> None:
    ds, _ = _border_dataset(tmp_path, ["background", "a", "b", "c"])
    crops = Stage1Crops(ds, resize=240, crop=240, flip=False, progress=False)
    assert ds[0].instances[0].class_id == 1
    image, label = crops[0]
    # box 0..20 × 20..40, ×1.2 → -2..22 × 18..42: the left 2 of 24 columns (20 of 240 output) lie outside
    # (bilinear image sampling blends the last 5 of them with the edge pixels).
    assert torch.all(label[:, :19] == 255) and torch.all(image[:, :, :14] == 0)
    assert not torch.any(label[:, 21:] == 255) and torch.all(image[:, :, 25:] == 200)
    assert set(label[:, 21:].unique().tolist()) == {0, 1}   # object 2 next to it is background here
    assert torch.all(label[30:210, 40:200] == 1)


def test_stage1_min_window_grows_small_boxes_about_their_centre(tmp_path: Path) -> None:
    ds, _ = _border_dataset(tmp_path, ["background", "a", "b", "c"])
    inst = ds[0].instances[1]  # class 2: x 20..30, y 22..38 → ×1.2: 12 × 19.2 px, centre (25, 30)
    crops = Stage1Crops(ds, resize=240, crop=240, flip=False, min_window=48, progress=False)
    np.testing.assert_allclose(enlarge_boxes(inst.box[None], 1.2, 48)[0], [1, 6, 49, 54])
    _, label = crops[1]
    # 48 px → 240: the object (10 × 16 px) fills the middle 50 × 80 output pixels, the rest is background
    ys, xs = np.nonzero(label.numpy() == 2)
    assert 45 <= xs.max() - xs.min() + 1 <= 55 and 75 <= ys.max() - ys.min() + 1 <= 85
    assert abs(xs.mean() - 120) < 3 and abs(ys.mean() - 120) < 3
    plain = Stage1Crops(ds, resize=240, crop=240, flip=False, progress=False)[1][1]
    assert (plain.numpy() == 2).mean() > 0.6  # without a minimum the object fills the window
    np.testing.assert_allclose(enlarge_boxes(inst.box[None], 1.2, 5)[0], enlarge_boxes(inst.box[None], 1.2)[0])


def test_stage1_without_background_keeps_stuff_and_ignores_other_things(tmp_path: Path) -> None:
    ds, label = _border_dataset(tmp_path, ["sky", "a", "b", "c"])
    assert ds.thing_classes == (0, 1, 2, 3)  # no "background" class and no things.txt: every class is a thing
    (Path(ds.root) / "things.txt").write_text("a\nb\n")
    ds = open_dataset(ds.root, "folder", "train")
    inst = ds[0].instances[1]
    assert inst.class_id == 2
    out = stage1_label(label, inst.mask, 2, ds.thing_classes, background_class(ds.class_names))
    assert np.all(out[inst.mask] == 2)
    assert np.all(out[label == 1] == 255)          # another thing: ignored
    assert np.all(out[label == 3] == 3) and np.all(out[label == 0] == 0)   # stuff keeps its label
    with_bg = stage1_label(label, inst.mask, 2, ds.thing_classes, 0)
    assert set(np.unique(with_bg).tolist()) == {0, 2}


def test_stage1_determinism(folder_ds) -> None:  # noqa: ANN001
    a = Stage1Crops(folder_ds, resize=64, crop=48, seed=7, progress=False)
    b = Stage1Crops(folder_ds, resize=64, crop=48, seed=7, progress=False)
    assert all(_same(a[n], b[n]) for n in range(len(a)))
    b.set_epoch(1)
    assert not all(_same(a[n], b[n]) for n in range(len(a)))
    a.set_epoch(1)
    assert all(_same(a[n], b[n]) for n in range(len(a)))


# ------------------------------------------------------------------------------------------ stage 2

class _GivenProposals:
    """A ProposalCache stand-in: fixed raw boxes per image."""

    def __init__(self, boxes: dict[int, np.ndarray]) -> None:
        self._boxes = boxes

    def boxes(self, i: int, ds) -> np.ndarray:  # noqa: ANN001
        return np.asarray(self._boxes.get(i, np.zeros((0, 4))), np.float64).reshape(-1, 4)


def test_stage2_windows_overlap_ground_truth_and_label_all_classes(folder_ds) -> None:  # noqa: ANN001
    given = {}
    for i in range(len(folder_ds)):
        gt, _ = folder_ds.instance_boxes(i)
        given[i] = np.concatenate([gt + 2.0, [[0, 0, 4, 4], [W - 10, H - 10, W, H]]])  # 2 boxes far from GT
    crops = Stage2Crops(folder_ds, _GivenProposals(given), iou_threshold=0.5, resize=64, crop=64, flip=False,
                        balance=False, progress=False)
    n_gt = sum(len(folder_ds.instance_boxes(i)[0]) for i in range(len(folder_ds)))
    assert len(crops) == n_gt == len(crops.windows)
    for n in range(len(crops)):
        i = int(crops.window_image[n])
        gt, _ = folder_ds.instance_boxes(i)
        raw = crops.windows[n]
        centre = (raw[:2] + raw[2:]) / 2
        assert np.min(np.abs(centre - (gt[:, :2] + gt[:, 2:]) / 2 - 2.0).sum(axis=1)) <= 1.0
        image, label = crops[n]
        expect_img, expect_lab = warp_window(folder_ds.image(i), folder_ds.label(i), raw, 64)
        assert np.array_equal(label.numpy(), expect_lab) and np.array_equal(image.permute(1, 2, 0).numpy(),
                                                                             expect_img)
    # all classes: some window shows two or more object classes (stage 1 would have blanked the others)
    assert max(len(set(crops[n][1].unique().tolist()) - {0, 255}) for n in range(len(crops))) >= 2


def test_stage2_min_window(folder_ds) -> None:  # noqa: ANN001
    given = {i: folder_ds.instance_boxes(i)[0] for i in range(len(folder_ds))}
    small = Stage2Crops(folder_ds, _GivenProposals(given), resize=64, crop=64, balance=False, progress=False)
    grown = Stage2Crops(folder_ds, _GivenProposals(given), resize=64, crop=64, balance=False, progress=False,
                        min_window=60)
    sides = grown.windows[:, 2:] - grown.windows[:, :2]
    assert sides.min() >= 59 and (small.windows[:, 2:] - small.windows[:, :2]).min() < 59
    centres = (grown.windows[:, :2] + grown.windows[:, 2:]) / 2 - (small.windows[:, :2] + small.windows[:, 2:]) / 2
    assert np.abs(centres).max() <= 1.0


def test_stage2_balance_oversamples_the_rare_class(tmp_path: Path) -> None:
    root = tmp_path / "rare"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    boxes = {}
    for k in range(10):  # 10 images with a common class-1 square; only image 0 also has a class-2 square
        label = np.zeros((40, 60), np.uint8)
        label[5:25, 5:25] = 1
        boxes[k] = [[5, 5, 25, 25]]
        if k == 0:
            label[10:30, 35:55] = 2
            boxes[k].append([35, 10, 55, 30])
        Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(root / "images" / f"{k}.png")
        write_index_png(root / "masks" / f"{k}.png", label)
    (root / "classes.txt").write_text("background\ncommon\nrare\n")
    (root / "train.txt").write_text("".join(f"{k}\n" for k in range(10)))
    ds = open_dataset(root, "folder", "train")
    flat = Stage2Crops(ds, _GivenProposals(boxes), balance=False, progress=False)
    assert len(flat) == 11 and np.array_equal(flat.order, np.arange(11))
    rare_windows = flat.window_classes[:, 2]
    assert rare_windows.sum() == 1
    fair = Stage2Crops(ds, _GivenProposals(boxes), balance=True, samples_per_epoch=4000, seed=1, progress=False)
    share = fair.window_classes[fair.order, 2].mean()
    assert share > 0.4 and share > 4 * rare_windows.mean()   # 1/11 of the windows, drawn about half the time
    again = Stage2Crops(ds, _GivenProposals(boxes), balance=True, samples_per_epoch=4000, seed=1, progress=False)
    assert np.array_equal(fair.order, again.order)
    again.set_epoch(1)
    assert not np.array_equal(fair.order, again.order)
    fair.set_epoch(1)
    assert np.array_equal(fair.order, again.order) and _same(fair[5], again[5])


def test_stage2_without_overlapping_proposals_is_an_error(folder_ds) -> None:  # noqa: ANN001
    far = {i: [[0, 0, 3, 3]] for i in range(len(folder_ds))}
    with pytest.raises(DatasetError, match="no Edge Box proposal overlaps"):
        Stage2Crops(folder_ds, _GivenProposals(far), progress=False)


def test_stage2_with_real_edge_boxes(folder_ds, tmp_path: Path) -> None:  # noqa: ANN001
    cache = ProposalCache(tmp_path / "cache")
    crops = Stage2Crops(folder_ds, cache, iou_threshold=0.5, progress=False)
    assert len(crops) > 0 and cache.computed == len(folder_ds)
    for n in range(0, len(crops), max(1, len(crops) // 5)):
        i = int(crops.window_image[n])
        gt, _ = folder_ds.instance_boxes(i)
        shrunk = enlarge_boxes(crops.windows[n][None], 1 / 1.2)
        assert box_iou(shrunk, gt).max() > 0.4   # rounding to whole pixels moves the box a little
        image, label = crops[n]
        assert image.shape == (3, 224, 224) and label.shape == (224, 224)


def test_edge_filled_windows_are_the_inference_crops_and_reach_the_exported_meta(folder_ds) -> None:  # noqa: ANN001
    from deconv_gui.proposals.crops import crop_and_resize
    from deconv_gui.training.config import TrainConfig
    from deconv_gui.training.run_setup import model_meta

    given = {i: np.array([[-30.0, -20.0, 60.0, 50.0]]) for i in range(len(folder_ds))}  # past the top-left corner
    kw = dict(iou_threshold=0.0, resize=64, crop=64, flip=False, balance=False, progress=False)
    zeros = Stage2Crops(folder_ds, _GivenProposals(given), **kw)
    edge = Stage2Crops(folder_ds, _GivenProposals(given), fill="edge", **kw)
    i = int(edge.window_image[0])
    image, label = edge[0]
    expected = crop_and_resize(folder_ds.image(i), edge.windows[0].astype(np.int64), 64, "edge")
    assert np.array_equal(image.permute(1, 2, 0).numpy(), expected)
    assert zeros[0][0][:, :5, :5].max() == 0 and image[:, :5, :5].max() > 0  # the corner: black vs repeated
    assert torch.equal(label, zeros[0][1])  # labels: void outside either way
    assert model_meta(TrainConfig(crop_fill="edge"), folder_ds, {}).crop_fill == "edge"
    assert model_meta(TrainConfig(fc_padding="same"), folder_ds, {}).fc_padding == "same"
