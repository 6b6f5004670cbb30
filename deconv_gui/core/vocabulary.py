"""The words the whole package shares, spelled once: inference modes, aggregation and ensemble rules, devices,
precisions, dataset and export formats, training stages, and the rule for "is class 0 background?".

Command-line choices, config validation, the app's menus and the pipeline all read these tuples, so a new
option is added in one place. Pure Python: every layer may import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

InferenceMode = Literal["auto", "instances", "whole"]
INFERENCE_MODES: tuple[str, ...] = ("auto", "instances", "whole")
"""``instances``: DeconvNet's proposal-wise inference; ``whole``: one pass on the whole image; ``auto``: instances
for DeconvNet, whole for the other architectures."""

BaseMode = Literal["auto", "zeros", "whole"]
BASE_MODES: tuple[str, ...] = ("auto", "zeros", "whole")
"""What instance-wise aggregation starts from (see :func:`uses_whole_image_base`)."""

AggregationMode = Literal["max", "sum"]
AGGREGATIONS: tuple[str, ...] = ("max", "sum")
"""Paper Eq. 1 (pixel-wise maximum) and Eq. 2 (sum of the positive scores)."""

EnsembleMode = Literal["mean", "weighted", "product", "off"]
ENSEMBLE_MODES: tuple[str, ...] = ("mean", "weighted", "product", "off")
"""EDeconvNet's rules; ``weighted`` uses the weight ``deconv-gui tune-ensemble`` stored with the pair."""

Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")

Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
TRAINING_PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")

CropFill = Literal["zeros", "edge"]
CROP_FILLS: tuple[str, ...] = ("zeros", "edge")
"""What a proposal crop holds where its box reaches past the image: black (the original code's zero padding) or
the image's border pixels repeated (no false straight edge for the network to read as an object's side)."""

FcPadding = Literal["valid", "same"]
FC_PADDINGS: tuple[str, ...] = ("valid", "same")
"""DeconvNet's fc6: the paper's 7×7 valid conv (a 224² crop's 7×7 pool5 map becomes one 1×1 code, which the
7×7 fc6-deconv spreads back), or 7×7 with padding 3 (pool5's map keeps its size, one code per 32×32 block, as in
FCN-8s and SegNet; fc6-deconv then pads 3 too). ``same`` is this project's option for scenes (CamVid), where one
code per crop is too little to decode a street from."""

DatasetFormat = Literal["camvid", "voc", "folder"]
DATASET_FORMATS: tuple[str, ...] = ("camvid", "voc", "folder")

ExportFormat = Literal["palette", "index", "overlay", "instances", "coco"]
EXPORT_FORMATS: tuple[str, ...] = ("palette", "index", "overlay", "instances", "coco")

Stage = Literal["stage1", "stage2", "whole"]
STAGES: tuple[str, ...] = ("stage1", "stage2", "whole")
"""DeconvNet's two training stages (easy crops on ground-truth instances, hard crops from proposals) and
whole-image training."""

BACKGROUND_NAMES: tuple[str, ...] = ("background", "bg", "_background_")


def is_background(name: str) -> bool:
    """Whether a class name means "background" (VOC's class 0), whatever its case and spacing."""
    return name.strip().lower() in BACKGROUND_NAMES


def has_background_class(class_names: Sequence[str]) -> bool:
    """Whether class 0 is a background class (VOC, the synthetic scenes) rather than a real one (CamVid's Sky)."""
    return bool(class_names) and is_background(class_names[0])


def uses_whole_image_base(base: str, class_names: Sequence[str]) -> bool:
    """Whether instance-wise aggregation starts from a whole-image pass instead of 0.

    The paper starts from 0, so pixels no proposal covers end as class 0 — right when class 0 is "background"
    (VOC), wrong when it is a real class (CamVid's Sky). ``"auto"`` starts from the whole-image scores exactly
    when class 0 is not named background.
    """
    if base == "auto":
        return not has_background_class(class_names)
    return base == "whole"
