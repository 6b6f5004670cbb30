"""Dataset loaders: synthetic trees in the VOC, CamVid and folder layouts; instances; every bad-dataset error."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deconv_gui.core.errors import DatasetError
from deconv_gui.core.palette import CAMVID_CLASSES, CAMVID_COLOURS
from deconv_gui.core.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_COLOURS, make_scene
from deconv_gui.io.label_maps import write_index_png
from deconv_gui.training.datasets import (
    class_frequencies,
    linknet_class_weights,
    open_dataset,
    sqrt_class_weights,
)
from deconv_gui.training.synthetic_tree import write_synthetic_tree

H, W = 96, 128
N_TRAIN, N_VAL = 3, 2


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("trees")
    return {layout: write_synthetic_tree(base / layout, layout, n_train=N_TRAIN, n_val=N_VAL, height=H, width=W)
            for layout in ("voc", "camvid", "folder")}


def _copy(tree: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tree, tmp_path / tree.name))


@pytest.mark.parametrize("layout", ["voc", "camvid", "folder"])
def test_loads_every_layout(trees: dict[str, Path], layout: str) -> None:
    train = open_dataset(trees[layout], layout, "train")
    val = open_dataset(trees[layout], layout, "val")
    assert (len(train), len(val)) == (N_TRAIN, N_VAL)
    assert train.class_names == list(SYNTHETIC_CLASSES)
    assert train.palette.shape == (6, 3) and train.palette.dtype == np.uint8
    assert np.array_equal(train.palette, np.asarray(SYNTHETIC_COLOURS, np.uint8))
    assert train.thing_classes == (1, 2, 3, 4, 5)
    for i in range(len(val)):
        item = val[i]
        scene = make_scene(N_TRAIN + i, height=H, width=W)
        assert item.image.shape == (H, W, 3) and item.image.dtype == np.uint8
        assert item.label.shape == (H, W) and item.label.dtype == np.uint8
        assert item.path == val.image_paths[i]
        inner = item.label[2:-2, 2:-2]
        assert np.array_equal(inner, scene.semantic[2:-2, 2:-2])
        if layout == "camvid":  # the frame holds the void value 6, mapped to 255
            assert np.all(item.label[:2] == 255) and np.all(item.label[:, -2:] == 255)
        else:
            assert np.array_equal(item.label, scene.semantic)
        if layout != "voc":  # lossless PNG
            assert np.array_equal(item.image, scene.image)
        assert np.array_equal(val.label(i), item.label)


def test_voc_instances_are_the_scene_instances(trees: dict[str, Path]) -> None:
    ds = open_dataset(trees["voc"], "voc", "train")
    for i in range(len(ds)):
        scene = make_scene(i, height=H, width=W)
        item = ds[i]
        assert len(item.instances) == len(scene.classes)
        for k, inst in enumerate(item.instances):
            assert inst.class_id == scene.classes[k]
            assert np.array_equal(inst.mask, scene.instances == k + 1)
            assert np.array_equal(inst.box, scene.boxes[k])
        boxes, classes = ds.instance_boxes(i)
        assert np.array_equal(boxes, scene.boxes) and np.array_equal(classes, scene.classes)


@pytest.mark.parametrize("layout", ["camvid", "folder"])
def test_components_become_instances(trees: dict[str, Path], layout: str) -> None:
    ds = open_dataset(trees[layout], layout, "train")
    for i in range(len(ds)):
        item = ds[i]
        assert item.instances
        union = np.zeros((H, W), bool)
        for inst in item.instances:
            assert inst.mask.sum() >= ds.min_instance_pixels
            assert np.all(item.label[inst.mask] == inst.class_id)
            assert not (union & inst.mask).any()
            union |= inst.mask
            ys, xs = np.nonzero(inst.mask)
            assert np.array_equal(inst.box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def _hand_folder(tmp_path: Path, label: np.ndarray, classes: list[str]) -> Path:
    root = tmp_path / "hand"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.fromarray(np.zeros((*label.shape, 3), np.uint8)).save(root / "images" / "a.png")
    write_index_png(root / "masks" / "a.png", label)
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    (root / "train.txt").write_text("a\n")
    return root


def test_connected_components_are_8_connected_and_small_ones_dropped(tmp_path: Path) -> None:
    label = np.zeros((60, 80), np.uint8)
    label[5:15, 5:15] = 1          # class 1, component A (100 px)
    label[30:40, 5:15] = 1         # class 1, component B (100 px)
    label[50:53, 70:73] = 1        # class 1, 9 px: below min_instance_pixels
    label[5:15, 40:50] = 2         # class 2: two squares touching at one corner = one 8-connected component
    label[15:25, 50:60] = 2
    label[40:60, 30:60] = 3        # class 3 is a stuff class here (things.txt)
    root = _hand_folder(tmp_path, label, ["background", "a", "b", "c"])
    (root / "things.txt").write_text("a\n2\n")
    ds = open_dataset(root, "folder", "train")
    assert ds.thing_classes == (1, 2)
    inst = ds[0].instances
    assert [i.class_id for i in inst] == [1, 1, 2]
    assert [i.box.tolist() for i in inst] == [[5, 5, 15, 15], [5, 30, 15, 40], [40, 5, 60, 25]]
    assert [int(i.mask.sum()) for i in inst] == [100, 100, 200]
    small = open_dataset(root, "folder", "train", min_instance_pixels=5)
    assert len(small[0].instances) == 4


def test_builtin_camvid_classes_things_and_void(tmp_path: Path) -> None:
    root = tmp_path / "camvid"
    (root / "train").mkdir(parents=True)
    (root / "trainannot").mkdir()
    label = np.tile(np.arange(12, dtype=np.uint8).repeat(10), (20, 1))  # columns of 0..11
    Image.fromarray(np.zeros((20, 120, 3), np.uint8)).save(root / "train" / "x.png")
    write_index_png(root / "trainannot" / "x.png", label)
    (root / "train.txt").write_text("/SegNet/CamVid/train/x.png /SegNet/CamVid/trainannot/x.png\n")
    ds = open_dataset(root, "camvid", "train")
    assert ds.class_names == list(CAMVID_CLASSES)
    assert np.array_equal(ds.palette, np.asarray(CAMVID_COLOURS, np.uint8))
    assert [ds.class_names[c] for c in ds.thing_classes] == [
        "Pole", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist"]
    lab = ds.label(0)
    assert np.all(lab[:, 110:] == 255) and np.array_equal(np.unique(lab[:, :110]), np.arange(11))
    assert sorted({i.class_id for i in ds[0].instances}) == sorted(ds.thing_classes)


def test_cache_images_and_class_frequencies(trees: dict[str, Path]) -> None:
    ds = open_dataset(trees["folder"], "folder", "train", cache_images=True)
    assert ds[0].image is ds[0].image and ds.label(1) is ds.label(1)
    freq = class_frequencies(ds)
    counts = sum(np.bincount(make_scene(i, height=H, width=W).semantic.ravel(), minlength=6) for i in range(N_TRAIN))
    assert np.allclose(freq, counts / counts.sum())
    assert class_frequencies(ds) is not class_frequencies(ds)  # callers get copies of the cached array
    camvid = class_frequencies(open_dataset(trees["camvid"], "camvid", "train"))
    assert camvid.sum() == pytest.approx(1.0) and not np.allclose(camvid, freq)  # void frame excluded
    w = linknet_class_weights(np.array([0.0, 0.5, np.e - 1.02]))
    assert np.allclose(w, [1 / np.log(1.02), 1 / np.log(1.52), 1.0])


def test_sqrt_class_weights_lift_rare_classes_by_the_root_of_their_rarity() -> None:
    # present classes 0.64, 0.16, 0.04 (median 0.16); the absent class keeps weight 1
    w = sqrt_class_weights(np.array([0.64, 0.16, 0.04, 0.0]))
    assert np.allclose(w, [0.5, 1.0, 2.0, 1.0])
    assert np.allclose(sqrt_class_weights(np.zeros(3)), 1.0)


def test_class_weighting_picks_the_rule(trees) -> None:
    from deconv_gui.training.config import TrainConfig
    from deconv_gui.training.run_setup import class_weights

    ds = open_dataset(trees["folder"], "folder", "train")
    freq = class_frequencies(ds)
    assert class_weights(TrainConfig(class_weighting="none"), ds) is None
    assert np.allclose(class_weights(TrainConfig(class_weighting="sqrt"), ds).numpy(), sqrt_class_weights(freq))
    assert np.allclose(class_weights(TrainConfig(class_weighting="linknet"), ds).numpy(), linknet_class_weights(freq))


# ------------------------------------------------------------------------------------------ errors


def _expect(match: str, fn, *args, **kwargs) -> DatasetError:  # noqa: ANN001
    with pytest.raises(DatasetError, match=match) as info:
        fn(*args, **kwargs)
    return info.value


def test_missing_root_format_and_split(trees: dict[str, Path], tmp_path: Path) -> None:
    _expect("nowhere.*not found", open_dataset, tmp_path / "nowhere", "voc", "train")
    _expect("unknown dataset format", open_dataset, trees["voc"], "cityscapes", "train")
    _expect("test.txt", open_dataset, trees["camvid"], "camvid", "test")
    _expect("test.txt", open_dataset, trees["voc"], "voc", "test")


@pytest.mark.parametrize("layout,victim", [
    ("voc", "JPEGImages/scene_0000.jpg"), ("voc", "SegmentationClass/scene_0001.png"),
    ("camvid", "train/scene_0001.png"), ("camvid", "trainannot/scene_0002.png"),
    ("folder", "images/scene_0000.png"), ("folder", "masks/scene_0001.png"),
])
def test_missing_image_or_label_names_the_file(trees: dict[str, Path], tmp_path: Path, layout: str,
                                                victim: str) -> None:
    root = _copy(trees[layout], tmp_path)
    (root / victim).unlink()
    name = Path(victim).stem if layout == "folder" and victim.startswith("images") else Path(victim).name
    _expect(name, open_dataset, root, layout, "train")


def test_empty_split_lists(trees: dict[str, Path], tmp_path: Path) -> None:
    for layout, listing in (("voc", "ImageSets/Segmentation/train.txt"), ("camvid", "train.txt"),
                            ("folder", "train.txt")):
        root = _copy(trees[layout], tmp_path)
        (root / listing).write_text("\n")
        _expect("train.txt.*empty", open_dataset, root, layout, "train")
        shutil.rmtree(root)


def test_size_mismatch_names_the_label(trees: dict[str, Path], tmp_path: Path) -> None:
    root = _copy(trees["folder"], tmp_path)
    write_index_png(root / "masks" / "scene_0001.png", np.zeros((H // 2, W), np.uint8))
    ds = open_dataset(root, "folder", "train")
    ds[0]
    err = _expect("scene_0001.png.*128×48.*128×96", ds.__getitem__, 1)
    assert err.path.endswith("masks/scene_0001.png")


def test_label_values_outside_the_classes(trees: dict[str, Path], tmp_path: Path) -> None:
    root = _copy(trees["folder"], tmp_path)
    label = make_scene(2, height=H, width=W).semantic.copy()
    label[:3, :3], label[-1, -1] = 9, 200
    write_index_png(root / "masks" / "scene_0002.png", label)
    ds = open_dataset(root, "folder", "train")
    err = _expect(r"scene_0002.png: label values 9, 200 are not classes", ds.label, 2)
    assert "0..5" in str(err)


def test_unreadable_files(trees: dict[str, Path], tmp_path: Path) -> None:
    root = _copy(trees["camvid"], tmp_path)
    (root / "train" / "scene_0000.png").write_bytes(b"not a png at all")
    (root / "trainannot" / "scene_0001.png").write_bytes(b"")
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(root / "trainannot" / "scene_0002.png")  # colour label
    ds = open_dataset(root, "camvid", "train")
    _expect("scene_0000.png: not an image", ds.__getitem__, 0)
    _expect("scene_0001.png: .*empty", ds.label, 1)
    _expect("scene_0002.png: label image must be single-channel", ds.label, 2)


def test_folder_needs_classes_and_valid_things(trees: dict[str, Path], tmp_path: Path) -> None:
    root = _copy(trees["folder"], tmp_path)
    (root / "things.txt").write_text("disc\nhexagon\n")
    _expect("things.txt: 'hexagon' is neither a class name nor a class id", open_dataset, root, "folder", "train")
    (root / "classes.txt").unlink()
    _expect("classes.txt: class-names file classes.txt not found", open_dataset, root, "folder", "train")


def test_voc_instance_map_size_mismatch(trees: dict[str, Path], tmp_path: Path) -> None:
    root = _copy(trees["voc"], tmp_path)
    write_index_png(root / "SegmentationObject" / "scene_0000.png", np.zeros((H, W + 2), np.uint8))
    ds = open_dataset(root, "voc", "train")
    _expect("SegmentationObject/scene_0000.png: instance map is 130×96", ds.__getitem__, 0)
