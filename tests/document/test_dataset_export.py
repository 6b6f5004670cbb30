"""Dataset export: edited images → a VOC tree that the training loader reads back as it was written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deconv_gui.core.cancel import CancelToken, no_progress
from deconv_gui.core.errors import OutputError
from deconv_gui.core.synthetic import SYNTHETIC_CLASSES, make_scene
from deconv_gui.document.annotation import AnnotationLayer
from deconv_gui.document.autosave import EditsStore, image_digest, save_edits
from deconv_gui.document.dataset_export import dataset_export_job
from deconv_gui.document.jobs import Engine, load_runner
from deconv_gui.document.session import ViewChoices
from deconv_gui.io.voc_export import voc_split, write_voc_dataset
from deconv_gui.training.datasets import open_dataset


def test_split():
    assert voc_split(["a"]) == (["a"], ["a"])
    assert voc_split(["a", "b"]) == (["a"], ["b"])
    train, val = voc_split([str(i) for i in range(10)], val_every=5)
    assert val == ["4", "9"] and len(train) == 8


def test_write_voc_dataset_reads_back_through_the_training_loader(tmp_path):
    items = []
    for seed in range(3):
        scene = make_scene(seed, height=48, width=64)
        label = scene.semantic.astype(np.uint8).copy()
        label[:4, :4] = 255
        items.append((f"img{seed}", scene.image, label))
    names = list(SYNTHETIC_CLASSES)
    root = tmp_path / "voc"
    write_voc_dataset(root, items, names, np.zeros((len(names), 3), np.uint8), val_every=3)
    train, val = open_dataset(root, "voc", "train"), open_dataset(root, "voc", "val")
    assert len(train) == 2 and len(val) == 1 and train.class_names == names
    assert np.array_equal(train.label(0), items[0][2]) and np.array_equal(val.label(0), items[2][2])
    assert train.image(1).shape == (48, 64, 3)
    assert np.abs(train.image(1).astype(int) - items[1][1]).mean() < 8  # JPEG, quality 95
    with pytest.raises(OutputError, match="not overwriting"):
        write_voc_dataset(root, items, names, np.zeros((6, 3), np.uint8))


def test_dataset_export_job_uses_edits_over_predictions(tmp_path, tiny_deconvnet_ckpt):
    folder = tmp_path / "imgs"
    folder.mkdir()
    images, files = {}, []
    for seed in range(3):
        image = make_scene(seed, height=64, width=80).image
        path = folder / f"s{seed}.png"
        Image.fromarray(image).save(path)
        images[path], files = image, [*files, path]
    engine = Engine()
    engine.set_runner(load_runner(tiny_deconvnet_ckpt, "cpu"), tiny_deconvnet_ckpt)
    engine.set_proposals(3, None)
    store = EditsStore()
    # s0: open in the app with edits (cached); s1: edits only on disk (segmented by the job); s2: no edits
    cached_layer = AnnotationLayer((64, 80))
    cached_layer.stroke("brush", [(10.5, 10.5), (40.5, 10.5)], 3, 2)
    prediction0 = np.zeros((64, 80), np.uint8)
    cached = {files[0]: (images[files[0]], None, cached_layer.composite(prediction0))}
    disk_layer = AnnotationLayer((64, 80))
    disk_layer.polygon([(0, 0), (80, 0), (80, 64), (0, 64)], 4)  # every pixel edited: the prediction is hidden
    disk_layer.stroke("void", [(20.5, 20.5)], 2, 255)
    save_edits(store.path_for(files[1]), disk_layer.label, disk_layer.edited, image_name="s1.png",
               digest=image_digest(images[files[1]]))
    job = dataset_export_job(engine, files, cached, ViewChoices(), tmp_path / "ds",
                             has_saved_edits=store.has_edits,
                             saved_edits=lambda p, im: store.load(p, im, set_aside=False))
    job(no_progress, CancelToken())
    train = open_dataset(tmp_path / "ds", "voc", "train")
    val = open_dataset(tmp_path / "ds", "voc", "val")
    assert [Path(p).stem for p in train.image_paths] == ["s0"] and [Path(p).stem for p in val.image_paths] == ["s1"]
    assert np.array_equal(train.label(0), cached_layer.composite(prediction0))
    assert np.array_equal(val.label(0), disk_layer.label)
    assert (val.label(0) == 255).sum() > 5


def test_folder_export_uses_autosaved_edits_of_images_not_open(tmp_path, tiny_deconvnet_ckpt):
    from deconv_gui.io.label_maps import read_label_png

    image = make_scene(1, height=64, width=80).image
    path = tmp_path / "a.png"
    Image.fromarray(image).save(path)
    engine = Engine()
    engine.set_runner(load_runner(tiny_deconvnet_ckpt, "cpu"), tiny_deconvnet_ckpt)
    engine.set_proposals(3, None)
    layer = AnnotationLayer((64, 80))
    layer.polygon([(10, 10), (50, 10), (50, 40), (10, 40)], 5)
    store = EditsStore()
    save_edits(store.path_for(path), layer.label, layer.edited, image_name="a.png", digest=image_digest(image))
    job = engine.export_folder_job([path], {}, ViewChoices(), tmp_path / "out", {"palette"}, overwrite=False,
                                   saved_edits=lambda p, im: store.load(p, im, set_aside=False))
    job(no_progress, CancelToken())
    label = read_label_png(tmp_path / "out" / "a.png")
    assert (label[10:40, 10:50] == 5).all() and (label[layer.edited] == 5).all()


def test_a_latin1_image_name_round_trips_through_the_voc_lists(tmp_path):
    import os

    name = os.fsdecode(b"caf\xe9")  # a file name that is not UTF-8, as Python holds it
    scene = make_scene(0, height=48, width=64)
    label = scene.semantic.astype(np.uint8)
    names = list(SYNTHETIC_CLASSES)
    root = tmp_path / "voc"
    write_voc_dataset(root, [(name, scene.image, label), ("plain", scene.image, label)], names,
                      np.zeros((len(names), 3), np.uint8), val_every=2)
    assert b"caf\xe9\n" in (root / "ImageSets" / "Segmentation" / "trainval.txt").read_bytes()
    both = open_dataset(root, "voc", "trainval")
    assert len(both) == 2 and np.array_equal(both.label(0), label)
