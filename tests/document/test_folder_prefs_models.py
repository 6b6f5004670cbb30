"""FolderModel, Preferences file and the bundled-model scan (no Qt)."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from deconv_gui.core.errors import CheckpointError
from deconv_gui.document.folder import FolderModel
from deconv_gui.document.models import bundled_models, read_meta
from deconv_gui.document.preferences import (
    MAX_RECENT,
    Preferences,
    load_preferences,
    preferences_path,
    read_preferences,
    save_preferences,
)
from deconv_gui.postprocess.crf import CRFParams


def test_folder_from_paths_next_previous_and_states(scene_folder, tmp_path):
    extra = tmp_path / "extra.png"
    Image.new("RGB", (8, 8)).save(extra)
    (tmp_path / "notes.txt").write_text("not an image")
    folder = FolderModel.from_paths([scene_folder, extra, tmp_path / "notes.txt", scene_folder / "scene_0.png"])
    names = [p.name for p in folder.files]
    assert names == ["scene_0.png", "scene_1.png", "scene_2.png", "extra.png"]
    assert folder.current_path.name == "scene_0.png" and folder.folder == scene_folder
    assert folder.previous().name == "scene_0.png"  # stays at the start
    assert folder.next().name == "scene_1.png"
    for _ in range(5):
        folder.next()
    assert folder.current_path.name == "extra.png"  # stays at the end
    folder.set_state(folder.files[1], "segmented")
    assert folder.state(folder.files[1]) == "segmented" and folder.count("not run") == 3
    assert len(FolderModel.from_paths([tmp_path / "notes.txt"])) == 0


def test_preferences_round_trip_in_the_config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DECONV_GUI_CONFIG_DIR", str(tmp_path / "cfg"))
    assert preferences_path() == tmp_path / "cfg" / "preferences.json"
    prefs = load_preferences()
    assert prefs == Preferences()
    for i in range(MAX_RECENT + 3):
        prefs.add_recent_file(tmp_path / f"img{i}.png")
    prefs.add_recent_file(tmp_path / "img5.png")  # moves to the front, no duplicate
    prefs.add_recent_weights(tmp_path / "w.pt")
    prefs.set_crf_params(CRFParams(iterations=3, bilateral_srgb=5.0))
    prefs.num_proposals, prefs.device, prefs.edge_model_file = 12, "cpu", "/x/model.yml.gz"
    save_preferences(prefs)
    text = preferences_path().read_text()
    assert json.loads(text)["num_proposals"] == 12  # readable JSON
    again = load_preferences()
    assert again == prefs
    assert again.recent_files[0].endswith("img5.png") and len(again.recent_files) == MAX_RECENT
    assert again.crf_params() == CRFParams(iterations=3, bilateral_srgb=5.0)


def test_broken_preferences_fall_back_to_defaults(tmp_path):
    path = tmp_path / "preferences.json"
    path.write_text("{not json")
    assert load_preferences(path) == Preferences()
    path.write_text(json.dumps({"num_proposals": "many", "crf": {"iterations": -1}, "unknown": 1}))
    prefs = load_preferences(path)
    assert prefs.num_proposals == Preferences().num_proposals
    assert prefs.crf_params() == CRFParams()  # invalid CRF values → defaults


def test_read_meta_and_bundled_models(tiny_deconvnet_ckpt, tiny_fcn_ckpt, tmp_path, caplog):
    meta = read_meta(tiny_deconvnet_ckpt)
    assert meta.architecture == "deconvnet" and meta.num_classes == len(meta.class_names)
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "a_fcn.pt").write_bytes(tiny_fcn_ckpt.read_bytes())
    (folder / "b_broken.pt").write_bytes(b"\x89PNG not weights")
    from deconv_gui.io.checkpoints import save_checkpoint

    state = {f"w{k}": torch.zeros(64, 64) for k in range(3)}
    save_checkpoint(folder / "c_big.pt", state, read_meta(tiny_fcn_ckpt), max_file_bytes=20_000)  # + its shards
    with caplog.at_level("WARNING"):
        found = bundled_models(folder)
    assert [m.path.name for m in found] == ["a_fcn.pt", "c_big.pt"]
    assert "b_broken.pt" in caplog.text and "part2" not in caplog.text  # shards are not reported as broken
    assert "fcn8s" in found[0].label
    assert bundled_models(tmp_path / "missing") == []
    with pytest.raises(CheckpointError, match="b_broken.pt"):
        read_meta(folder / "b_broken.pt")


@pytest.mark.parametrize(("field", "value"), [
    ("recent_files", 5), ("recent_weights", "w.pt"), ("annotation_folder", ["a"]), ("device", None),
    ("device", "tpu"), ("edge_model_file", 42), ("num_proposals", True), ("num_proposals", -3),
    ("crf", {"nonsense": 1}), ("crf", [1, 2]),
])
def test_a_bad_preference_is_its_default_one_warning_and_the_file_kept(tmp_path, field, value):
    path = tmp_path / "preferences.json"
    other = {"num_proposals": 7} if field != "num_proposals" else {"device": "cpu"}
    original = json.dumps({field: value, **other})
    path.write_text(original)
    prefs, problems = read_preferences(path)
    assert getattr(prefs, field) == getattr(Preferences(), field)
    assert all(getattr(prefs, k) == v for k, v in other.items())  # the other fields are kept
    assert len(problems) == 1 and f"'{field}'" in problems[0] and str(path) in problems[0]
    (kept,) = tmp_path.glob("preferences.json.bad-*")
    assert kept.read_text() == original and kept.name in problems[0]
    save_preferences(prefs, path)  # the save on exit writes valid preferences; the user's text stays aside
    assert read_preferences(path) == (prefs, []) and kept.read_text() == original


def test_a_list_with_a_bad_item_keeps_the_good_ones(tmp_path):
    path = tmp_path / "preferences.json"
    path.write_text(json.dumps({"recent_files": ["/a.png", 3, "/b.png"]}))
    prefs, problems = read_preferences(path)
    assert prefs.recent_files == ["/a.png", "/b.png"] and len(problems) == 1 and "'recent_files'" in problems[0]


def test_a_corrupt_preferences_file_is_copied_aside_before_anything_overwrites_it(tmp_path):
    path = tmp_path / "preferences.json"
    path.write_bytes(b'{"device": "cpu", "recent_fi')
    prefs, problems = read_preferences(path)
    assert prefs == Preferences() and len(problems) == 1 and "unreadable preferences" in problems[0]
    (kept,) = tmp_path.glob("preferences.json.bad-*")
    assert kept.read_bytes() == b'{"device": "cpu", "recent_fi'
    read_preferences(path)  # read twice (two app starts): a second copy, the first one untouched
    assert len(list(tmp_path.glob("preferences.json.bad-*"))) == 2


def test_saving_into_an_unwritable_place_warns_once_and_never_raises(tmp_path, caplog):
    path = tmp_path / "preferences.json"
    path.mkdir()  # a folder where the file should be: the atomic write refuses (OutputError)
    for _ in range(3):
        assert save_preferences(Preferences(), path) == path
    assert len([r for r in caplog.records if "cannot save preferences" in r.getMessage()]) == 1
