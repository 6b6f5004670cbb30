"""The caffemodel reader and the import's error cases: every bad file names the file, the layer and the reason,
and nothing is written (an existing output stays as it was)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deconv_gui.cli import main
from deconv_gui.io.caffe_model import CaffeModelError, encode_net, read_caffemodel
from deconv_gui.models.caffe_import import import_caffe
from tests.models.caffe_nets import Layer, deconvnet_layers, fcn8s_layers, to_net, write_caffemodel

WIDTH = 1 / 16


@pytest.fixture(scope="module")
def good_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("caffe") / "good.caffemodel"
    return write_caffemodel(path, deconvnet_layers(WIDTH)).read_bytes()


@pytest.mark.parametrize("version", ["V1", "V2"])
def test_reader_returns_layers_in_order_with_their_blobs(tmp_path: Path, version: str) -> None:
    layers = fcn8s_layers(WIDTH)
    net = read_caffemodel(write_caffemodel(tmp_path / "f.caffemodel", layers, version, name="FCN"))
    assert (net.name, net.version) == ("FCN", version)
    assert [x.name for x in net.layers] == [x.name for x in layers]
    assert [x.type for x in net.layers] == [x.type for x in layers]
    assert net.layers[0].bottoms == ["data"] and net.layers[0].tops == ["conv1_1"]
    for ours, theirs in zip(net.layers, layers, strict=True):
        assert len(ours.blobs) == len(theirs.blobs)
        for a, b in zip(ours.blobs, theirs.blobs, strict=True):
            # V1 writes legacy 4-D shapes (num, channels, height, width): a bias is (1, 1, 1, C)
            assert a.data.size == b.size
            np.testing.assert_array_equal(a.data.reshape(b.shape), b)
            if version == "V2":
                assert a.shape == b.shape


def test_unknown_v1_type_values_do_not_fail(tmp_path: Path) -> None:
    """BN (43) and UNPOOLING (42) are not in BVLC's enum; an unseen value is kept as TYPE_<n>."""
    from deconv_gui.io.caffe_model import _enc_field, parse_caffemodel

    layer = _enc_field(4, 2, b"mystery") + _enc_field(5, 0, 77)
    net = parse_caffemodel(_enc_field(2, 2, layer))
    assert (net.layers[0].name, net.layers[0].type) == ("mystery", "TYPE_77")


def _drop(layers: list[Layer], name: str) -> list[Layer]:
    return [x for x in layers if x.name != name]


def _bad_files(good: bytes) -> dict[str, tuple[bytes, str]]:
    layers = deconvnet_layers(WIDTH)
    wrong_shape = deconvnet_layers(WIDTH)
    conv21 = next(x for x in wrong_shape if x.name == "conv2_1")
    conv21.blobs[0] = conv21.blobs[0][:, :5]
    extra = [*deconvnet_layers(WIDTH), Layer("conv6_extra", "CONVOLUTION", ["x"], ["y"], {},
                                               [np.zeros((4, 4, 1, 1), np.float32), np.zeros(4, np.float32)])]
    vgg = [x for x in fcn8s_layers(WIDTH) if x.name.startswith(("conv", "fc6", "fc7"))]
    vgg.append(Layer("fc8", "CONVOLUTION", ["fc7"], ["fc8"], {}, [np.zeros((10, 256, 1, 1), np.float32)]))
    bn_train = deconvnet_layers(WIDTH)
    bn = next(x for x in bn_train if x.name == "bn3_1")
    bn.blobs = [*bn.blobs, bn.blobs[0].copy(), bn.blobs[0].copy()]

    def encoded(ls: list[Layer]) -> bytes:
        return encode_net(to_net(ls))

    return {
        "png": (b"\x89PNG\r\n\x1a\n" + bytes(100), "not a Caffe model: the file is a PNG image"),
        "checkpoint": (b"PK\x03\x04" + bytes(100), "not a Caffe model: the file is a zip archive"),
        "prototxt": (b'name: "DeconvNet"\nlayers { name: "conv1_1" type: CONVOLUTION }\n',
                     "not a Caffe model: a text file (a .prototxt?)"),
        "random": (np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
                   "not a Caffe model"),
        "truncated": (good[: len(good) // 2], "truncated"),
        "missing": (encoded(_drop(layers, "conv3_2")), "missing layer 'conv3_2'"),
        "missing_bn": (encoded(_drop(layers, "debn2_1")), "missing layer 'debn2_1'"),
        "extra": (encoded(extra), "extra layer 'conv6_extra' (CONVOLUTION, 2 blobs)"),
        "shape": (encoded(wrong_shape), "layer 'conv2_1' (CONVOLUTION): blob 0 (weight) has shape (8, 5, 3, 3), "
                                        "expected (8, 8, 3, 3) for DeconvNet at width 0.0625"),
        "neither": (encoded(vgg), "neither DeconvNet"),
        "train_bn": (encoded(bn_train), "layer 'bn3_1' (BN): has 4 blobs, expected 2 (scale, shift"),
    }


@pytest.mark.parametrize("case", ["png", "checkpoint", "prototxt", "random", "truncated", "missing", "missing_bn",
                                  "extra", "shape", "neither", "train_bn"])
def test_bad_files_name_the_reason_and_write_nothing(tmp_path: Path, good_bytes: bytes, case: str) -> None:
    data, message = _bad_files(good_bytes)[case]
    src = tmp_path / f"{case}.caffemodel"
    src.write_bytes(data)
    out = tmp_path / "out.pt"
    with pytest.raises(CaffeModelError) as info:
        import_caffe(src, out)
    assert str(info.value).startswith(f"{src}: ")
    assert message in str(info.value)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == [src.name]  # no temporary file left behind either


def test_the_other_architecture_is_named(tmp_path: Path, good_bytes: bytes) -> None:
    src = tmp_path / "d.caffemodel"
    src.write_bytes(good_bytes)
    with pytest.raises(CaffeModelError, match="this is a DeconvNet net, not FCN-8s; import it with --arch deconvnet"):
        import_caffe(src, tmp_path / "x.pt", "fcn8s")


def test_cli_reports_the_error_and_leaves_an_existing_output(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "cut.caffemodel"
    write_caffemodel(src, fcn8s_layers(WIDTH))
    src.write_bytes(src.read_bytes()[:-1000])
    out = tmp_path / "old.pt"
    out.write_bytes(b"previous")
    assert main(["import-caffe", str(src), "--arch", "fcn8s", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {src}: truncated") and "Traceback" not in err
    assert out.read_bytes() == b"previous"


def test_cli_imports_and_says_what_it_recognised(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = write_caffemodel(tmp_path / "fcn.caffemodel", fcn8s_layers(WIDTH), name="FCN-8s")
    assert main(["import-caffe", str(src), "--out", str(tmp_path / "fcn.pt")]) == 0
    text = capsys.readouterr().out
    assert "FCN-8s, width 0.0625, 21 classes (VOC)" in text and "from V1 Caffe net 'FCN-8s'" in text
    assert torch.load(tmp_path / "fcn.pt", weights_only=True)["meta"]["geometry"] == "caffe"
