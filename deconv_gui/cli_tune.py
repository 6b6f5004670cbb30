"""``deconv-gui tune-ensemble`` and ``deconv-gui tune-crf``: choose post-processing on held-out images.

Examples::

    deconv-gui tune-ensemble --data ../shared/data/camvid --format camvid --split 'train@0006R0' \\
        --weights deconvnet.pt --partner fcn8s.pt            # prints the grid, stores the best weight
    deconv-gui tune-crf --data ../shared/data/camvid --format camvid --split 'train@0006R0' \\
        --weights deconvnet.pt [--partner fcn8s.pt] --limit 30 --grid small

Both run the network once per image (scores cached in memory, about ``C × H × W × 2`` bytes per model and
image), print every candidate's mIoU, and write the winner into the ``--weights`` checkpoint (or ``--out``)
unless ``--dry-run``. The CRF is stored only when it beats no CRF; otherwise the checkpoint records that no
setting helped and the pipeline keeps DeconvNet's preset for an explicit ``--crf``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path

from deconv_gui.core.errors import DeconvGuiError
from deconv_gui.core.vocabulary import DATASET_FORMATS
from deconv_gui.io.checkpoints import copy_checkpoint


def add_tune_parsers(sub: argparse._SubParsersAction, add_model_args) -> None:  # noqa: ANN001 - cli's helper
    """Register ``tune-ensemble`` and ``tune-crf`` (``add_model_args`` adds the shared model flags)."""
    for name, what in (("tune-ensemble", "choose the ensemble rule and weight on held-out images"),
                       ("tune-crf", "grid-search the dense-CRF kernels on held-out images")):
        p = sub.add_parser(name, help=what, description=__doc__.split("\n\n")[0])
        p.add_argument("--data", required=True, help="dataset root folder")
        p.add_argument("--format", choices=DATASET_FORMATS, required=True)
        p.add_argument("--split", default="val", help="split expression to choose on (e.g. 'train@0006R0')")
        p.add_argument("--limit", type=int, default=0, help="use only the first N images (0 = all)")
        p.add_argument("--out", default=None, help="write the tuned checkpoint here instead of into --weights")
        p.add_argument("--dry-run", action="store_true", help="print the grid, write nothing")
        if name == "tune-crf":
            p.add_argument("--grid", choices=("small", "full"), default="small", help="how many settings to try")
        add_model_args(p)


def _target_checkpoint(args: argparse.Namespace) -> Path:
    """The file the choice is written into: a copy at ``--out`` (made now, shard files too), else ``--weights``
    itself."""
    if not args.out:
        return Path(args.weights)
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DeconvGuiError(f"cannot write the tuned checkpoint ({err.strerror or err})", out) from None
    copy_checkpoint(args.weights, out)
    return out


def _cache(args: argparse.Namespace, **fixed: object):  # noqa: ANN202 - (segmenter, cache, names)
    """The segmenter of ``args`` (with the ``fixed`` settings and no CRF: the grids apply their own) and the
    cached scores of the chosen images; ``args`` itself is left as the user gave it."""
    from tqdm import tqdm

    from deconv_gui.cli import _make_segmenter, dataset_for_model
    from deconv_gui.inference.tuning import collect
    from deconv_gui.io.dataset_files import labelled_images

    args = argparse.Namespace(**{**vars(args), **fixed, "crf": False})
    segmenter = _make_segmenter(args)
    files, names = dataset_for_model(args, segmenter.runner.meta.class_names)
    count = min(len(files), args.limit or len(files))
    bar = tqdm(total=count, unit="img", desc="scores", disable=None)
    t0 = time.perf_counter()
    cache = collect(segmenter, labelled_images(files, len(names), args.limit), progress=lambda *_: bar.update(1))
    bar.close()
    print(f"cached the scores of {len(cache)} images of {args.split} in {time.perf_counter() - t0:.1f} s")
    return segmenter, cache, names


def cmd_tune_ensemble(args: argparse.Namespace) -> int:
    from deconv_gui.inference.tuning import ensemble_grid, store_choice

    if not args.partner:
        raise DeconvGuiError("tune-ensemble needs --partner (the whole-image model to ensemble with)")
    _, cache, names = _cache(args, ensemble="mean")
    rows = ensemble_grid(cache, len(names))
    alone = {"weighted 1.0": "DeconvNet alone", "weighted 0.0": "partner alone"}
    print("rule      weight  mIoU")
    for rule, weight, miou in rows:
        note = alone.get(f"{rule} {weight:.1f}", "mean (paper)" if weight == 0.5 else "")
        print(f"{rule:<9} {'' if math.isnan(weight) else f'{weight:.1f}':>6}  {100 * miou:5.2f}  {note}")
    best_rule, best_weight, best_miou = max(rows, key=lambda r: r[2])
    members = max(rows[0][2], rows[-2][2])  # partner alone (w 0), DeconvNet alone (w 1)
    print(f"best: {best_rule} {best_weight:.1f} → {100 * best_miou:.2f} mIoU "
          f"({100 * (best_miou - members):+.2f} over the better member) on {len(cache)} images of {args.split}")
    if args.dry_run:
        return 0
    record = {"rule": best_rule, "weight": 0.5 if math.isnan(best_weight) else best_weight,
              "partner": Path(args.partner).name, "chosen_on": args.split, "images": len(cache),
              "miou": round(best_miou, 6), "gain_over_best_member": round(best_miou - members, 6)}
    target = _target_checkpoint(args)
    store_choice(target, "ensemble", record)
    print(f"stored in {target}")
    return 0


def cmd_tune_crf(args: argparse.Namespace) -> int:
    from deconv_gui.inference.tuning import crf_grid, crf_record, default_crf_grid, store_choice

    segmenter, cache, names = _cache(args)
    opts = segmenter.options
    mode = opts.ensemble if segmenter.partner is not None else "off"
    grid = default_crf_grid(args.grid)
    t0 = time.perf_counter()
    rows = crf_grid(cache, len(names), grid, mode=mode, weight=opts.ensemble_weight,
                    device=segmenter.runner.device.type)
    print(f"{len(grid)} CRF settings × {len(cache)} images in {time.perf_counter() - t0:.1f} s "
          f"(ensemble {mode}{f' {opts.ensemble_weight:.1f}' if mode == 'weighted' else ''})")
    print("norm       g_sxy g_w  b_sxy b_srgb b_w  iters   mIoU")
    for params, miou in rows:
        if params is None:
            print(f"{'(no CRF)':<44}  {100 * miou:5.2f}")
            continue
        print(f"{params.normalization:<10} {params.gaussian_sxy:5g} {params.gaussian_weight:3g}  "
              f"{params.bilateral_sxy:5g} {params.bilateral_srgb:6g} {params.bilateral_weight:3g}  "
              f"{params.iterations:5d}   {100 * miou:5.2f}")
    baseline = rows[0][1]
    best_params, best = max(rows[1:], key=lambda r: r[1])
    assert best_params is not None
    print(f"best: {dataclasses.asdict(best_params)} → {100 * best:.2f} mIoU ({100 * (best - baseline):+.2f} over no "
          f"CRF) on {len(cache)} images of {args.split}")
    if args.dry_run:
        return 0
    target = _target_checkpoint(args)
    if best <= baseline:
        store_choice(target, "crf", {"chosen_on": args.split, "helps": False, "gain": round(best - baseline, 6)})
        print(f"no CRF setting helped; recorded in {target} (the app leaves the CRF off for this model)")
        return 0
    store_choice(target, "crf", crf_record(best_params, args.split, best, best - baseline))
    print(f"stored in {target}")
    return 0
