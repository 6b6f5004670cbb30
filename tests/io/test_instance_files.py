"""Array-level export writers: COCO RLE, boxes, connected components, instance files + JSON, COCO files."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from deconv_gui.core.errors import OutputError
from deconv_gui.io.atomic import COMMIT_MARK, clean_stale_temps
from deconv_gui.io.instance_files import (
    InstanceRecord,
    clip_box,
    coco_annotations,
    coco_categories,
    coco_image,
    encode_rle,
    is_background,
    label_components,
    mask_box,
    recover_instance_exports,
    write_coco,
    write_instances,
)

# pycocotools' decode trips numpy 2's __array__ copy deprecation; only the tests decode.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

NAMES = ["background", "disc", "square"]


def _disc(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def _decode(rle: dict) -> np.ndarray:
    return mask_utils.decode(dict(rle, counts=rle["counts"].encode("ascii"))).astype(bool)


def test_rle_round_trip_and_json_ready(rng: np.random.Generator) -> None:
    for mask in (_disc(37, 53, 18, 20, 11), rng.random((20, 31)) > 0.5, np.zeros((5, 7), bool)):
        rle = encode_rle(mask)
        assert rle["size"] == list(mask.shape) and isinstance(rle["counts"], str)
        json.dumps(rle)
        np.testing.assert_array_equal(_decode(rle), mask)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        encode_rle(np.zeros((2, 3, 4), bool))


def test_mask_box_and_clip_box() -> None:
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:9] = True
    assert mask_box(mask) == [3, 2, 9, 5]
    assert mask_box(np.zeros((4, 4), bool)) is None
    assert clip_box([-5, 3, 20, 11.5], (10, 12)) == [0.0, 3.0, 12.0, 10.0]


def test_label_components_split_each_class() -> None:
    label = np.zeros((40, 60), np.uint8)
    label[2:12, 2:12] = 1  # component A of class 1
    label[20:30, 30:50] = 1  # component B of class 1
    label[12:16, 12:16] = 1  # touches A diagonally: 8-connected, so part of A
    label[30:38, 2:10] = 2
    label[38:40, 58:60] = 2  # 4 pixels: below the minimum area
    found = label_components(label, [1, 2], min_area=16)
    assert [cls for cls, _ in found] == [1, 1, 2]
    a, b, c = (m for _, m in found)
    assert a.sum() == 100 + 16 and a[13, 13] and b.sum() == 200 and c.sum() == 64
    assert not (a & b).any()
    assert len(label_components(label, [2], min_area=1)) == 2
    assert label_components(label, [3]) == []


def test_background_detection() -> None:
    assert is_background(0, NAMES) and not is_background(1, NAMES)
    assert not is_background(0, ["Sky", "Building"])  # CamVid's class 0 is a real class
    assert [c["id"] for c in coco_categories(["Sky", "Building"])] == [1, 2]  # COCO ids ≥ 1: class index + 1
    assert [c["class_index"] for c in coco_categories(["Sky", "Building"])] == [0, 1]
    assert [c["name"] for c in coco_categories(NAMES)] == ["disc", "square"]


def _records(h: int = 30, w: int = 40) -> list[InstanceRecord]:
    return [
        InstanceRecord(mask=_disc(h, w, 10, 10, 6), class_id=1, score=0.8, index=0, box=(-4.0, 0.0, 30.0, 22.0),
                       objectness=0.5),
        InstanceRecord(mask=_disc(h, w, 20, 30, 5), class_id=2, score=0.6, index=3, source="user_box",
                       box=(20.0, 12.0, 45.0, 33.0), objectness=1.0),
    ]


def test_write_instances_schema_and_masks(tmp_path: Path) -> None:
    records = _records()
    written = write_instances(tmp_path, "img", (30, 40), NAMES, records, image_name="img.jpg")
    assert written == [tmp_path / "img_instances" / "001.png", tmp_path / "img_instances" / "004.png",
                       tmp_path / "img_instances.json"]
    data = json.loads((tmp_path / "img_instances.json").read_text())
    assert data["image"] == "img.jpg" and data["classes"] == NAMES
    assert data["image_size"] == {"height": 30, "width": 40}
    first, second = data["instances"]
    assert first == {
        "id": 1, "source": "proposal", "proposal": 1, "class_id": 1, "class_name": "disc",
        "mean_probability": 0.8, "objectness": 0.5, "box": [0.0, 0.0, 30.0, 22.0],
        "box_raw": [-4.0, 0.0, 30.0, 22.0], "mask_box": mask_box(records[0].mask),
        "area": int(records[0].mask.sum()), "mask": "img_instances/001.png", "user_box": False,
    }
    assert second["user_box"] and second["box"] == [20.0, 12.0, 40.0, 30.0] and second["class_name"] == "square"
    for rec, entry in zip(records, data["instances"], strict=True):
        with Image.open(tmp_path / entry["mask"]) as im:
            assert im.mode == "L"
            pixels = np.asarray(im)
        assert set(np.unique(pixels)) == {0, 255}
        np.testing.assert_array_equal(pixels == 255, rec.mask)


def test_write_instances_removes_only_stale_masks(tmp_path: Path) -> None:
    write_instances(tmp_path, "img", (30, 40), NAMES, _records())
    (tmp_path / "img_instances" / "notes.txt").write_text("mine")
    write_instances(tmp_path, "img", (30, 40), NAMES, _records()[1:])
    assert sorted(p.name for p in (tmp_path / "img_instances").iterdir()) == ["004.png", "notes.txt"]


def _set_of(out: Path, stem: str) -> list[int] | None:
    """The mask areas of ``stem``'s export when its JSON and mask folder form one consistent set, else None:
    every mask the JSON names exists with the JSON's pixel count, and the folder holds no other mask."""
    try:
        entries = json.loads((out / f"{stem}_instances.json").read_text())["instances"]
    except (OSError, ValueError):
        return None
    masks = out / f"{stem}_instances"
    on_disk = sorted(p.name for p in masks.glob("*.png")) if masks.is_dir() else []
    if on_disk != sorted(Path(e["mask"]).name for e in entries):
        return None
    for entry in entries:
        with Image.open(out / entry["mask"]) as im:
            if int((np.asarray(im) == 255).sum()) != entry["area"]:
                return None
    return [e["area"] for e in entries]


def _killed_at(step: int, out: Path, records: list[InstanceRecord]) -> bool:
    """Run ``write_instances`` in a forked child that dies (``os._exit``, no cleanup) just before its
    ``step``-th rename/replace/removal; True when it died there, False when it finished first."""
    pid = os.fork()
    if pid == 0:  # the child: count the steps that change what a reader sees
        try:
            count = [0]

            def counting(real):  # noqa: ANN001, ANN202
                def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
                    count[0] += 1
                    if count[0] == step:
                        os._exit(3)
                    return real(*args, **kwargs)
                return wrapper

            os.replace, os.rename, shutil.rmtree = (counting(f) for f in (os.replace, os.rename, shutil.rmtree))
            write_instances(out, "img", (30, 40), NAMES, records)
            os._exit(0)
        except BaseException:  # noqa: BLE001 - the child must never return into pytest
            os._exit(4)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 3), code
    return code == 3


def test_a_kill_at_any_step_of_an_instance_export_leaves_one_whole_set(tmp_path: Path) -> None:
    old = [InstanceRecord(mask=_disc(30, 40, 15, 20, r), class_id=1, score=0.5, index=i)
           for i, r in enumerate((4, 6, 8))]
    new = [InstanceRecord(mask=_disc(30, 40, 14, 18, r), class_id=2, score=0.7, index=i)
           for i, r in ((0, 3), (2, 5), (5, 7))]  # 000 and 002 change, 001 goes, 005 comes
    old_areas, new_areas = [int(r.mask.sum()) for r in old], [int(r.mask.sum()) for r in new]
    outcomes, torn_before_recovery = [], 0
    for step in range(1, 100):
        out = tmp_path / f"k{step}"
        out.mkdir()
        write_instances(out, "img", (30, 40), NAMES, old)
        (out / "img_instances" / "notes.txt").write_text("mine")
        if not _killed_at(step, out, new):
            break
        torn_before_recovery += _set_of(out, "img") is None
        recover_instance_exports(out)
        clean_stale_temps(out)
        areas = _set_of(out, "img")
        assert areas in (old_areas, new_areas), (step, areas)
        outcomes.append("old" if areas == old_areas else "new")
        assert sorted(p.name for p in out.iterdir()) == ["img_instances", "img_instances.json"], step
        assert (out / "img_instances" / "notes.txt").read_text() == "mine", step
    assert _set_of(out, "img") == new_areas  # the uninterrupted export
    assert len(outcomes) >= 8 and outcomes == sorted(outcomes, key=["old", "new"].index), outcomes
    assert "old" in outcomes and "new" in outcomes
    assert torn_before_recovery <= 2  # only inside the swap's renames, and the next export finishes those


def test_recovery_leaves_the_sets_of_running_processes_alone(tmp_path: Path) -> None:
    write_instances(tmp_path, "img", (30, 40), NAMES, _records())
    staged = tmp_path / f".img_instances.deconv-tmp-{os.getpid()}-0123abcd"
    staged.mkdir()
    (staged / COMMIT_MARK).write_text(json.dumps({"pid": os.getpid(), "folder": "img_instances",
                                                  "json": "img_instances.json"}))
    assert recover_instance_exports(tmp_path) == []
    assert staged.exists() and clean_stale_temps(tmp_path) == [] and staged.exists()


def test_coco_file_loads_with_pycocotools(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = _records()
    anns = coco_annotations(records, image_id=7, first_id=11)
    path = write_coco(tmp_path / "c.json", [coco_image(7, "img.png", (30, 40))], anns, NAMES)
    coco = COCO(str(path))
    capsys.readouterr()  # COCO() prints progress lines
    assert coco.getImgIds() == [7] and coco.getCatIds() == [2, 3]
    assert sorted(coco.getAnnIds(imgIds=[7])) == [11, 12]
    for rec, ann_id in zip(records, (11, 12), strict=True):
        ann = coco.loadAnns([ann_id])[0]
        np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), rec.mask)
        x0, y0, x1, y1 = mask_box(rec.mask)
        assert ann["bbox"] == [x0, y0, x1 - x0, y1 - y0]
        assert ann["area"] == int(rec.mask.sum()) and ann["score"] == rec.score
        assert ann["category_id"] == rec.class_id + 1 and ann["iscrowd"] == 0
        assert ann["proposal"] == rec.index + 1
    results = coco.loadRes([{k: a[k] for k in ("image_id", "category_id", "segmentation", "score")} for a in anns])
    capsys.readouterr()
    assert len(results.getAnnIds()) == 2  # usable as detection results for COCOeval too


def test_instance_folder_blocked_by_a_file(tmp_path: Path) -> None:
    (tmp_path / "img_instances").write_text("a file where the mask folder goes")
    with pytest.raises(OutputError, match="cannot create the folder") as info:
        write_instances(tmp_path, "img", (30, 40), NAMES, _records())
    assert info.value.path == str(tmp_path / "img_instances")
