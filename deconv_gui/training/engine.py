"""The training loop: ``run_training(cfg)`` trains, validates, checkpoints and reports one run.

One iteration = one optimizer step over ``grad_accum`` micro-batches of ``batch_size`` samples (per process).
The data order, the lr and every RNG are functions of the iteration (see ``sampling.py``, ``optim.lr_factor``,
``checkpointing``), so ``resume=True`` continues a run exactly where its last ``state.pt`` left it: a run killed
after a checkpoint and resumed ends with the same weights as one that never stopped.

SIGINT/SIGTERM ask the loop to stop: it finishes the current step, writes ``state.pt`` and a ``stopped`` event,
and returns ``"stopped"``. A second SIGINT raises KeyboardInterrupt at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from deconv_gui.core.errors import CheckpointError, DeconvGuiError
from deconv_gui.io.atomic import atomic_write_bytes, clean_stale_temps
from deconv_gui.training import distributed as dist_utils
from deconv_gui.training.checkpointing import (
    BEST_FILE,
    FINAL_FILE,
    STATE_FILE,
    check_fits,
    export_inference,
    inherited_proposals,
    init_weights,
    load_state,
    restore_rng,
    save_state,
)
from deconv_gui.training.config import TrainConfig, config_yaml
from deconv_gui.training.datasets import open_dataset
from deconv_gui.training.evaluation import (
    InstanceLabelerFactory,
    Normalizer,
    evaluate_labeler,
    evaluate_whole,
    val_record,
)
from deconv_gui.training.metrics_log import MetricsLog, attach_log_file
from deconv_gui.training.optim import SegmentationLoss, build_optimizer, lr_factor, set_lr
from deconv_gui.training.precise_bn import recompute_bn_stats
from deconv_gui.training.run_setup import (
    autocast_factory,
    class_weights,
    make_model,
    model_meta,
    resolve_device,
    train_samples,
    use_channels_last,
)
from deconv_gui.training.sampling import EpochIndexed, StepBatches

log = logging.getLogger(__name__)

RANKS_FILE = "ranks.json"


@dataclass
class RunResult:
    """How a run ended: ``status`` is ``"finished"`` or ``"stopped"``; ``iteration`` the steps done."""

    status: str
    iteration: int
    run_dir: Path
    best_miou: float
    final_path: Path | None
    is_main: bool = True  # False on the other ranks of a distributed run (they write and print nothing)


class StopRequest:
    """SIGINT/SIGTERM handler: the first signal sets ``requested``; a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._old: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        log.warning("%s received: stopping after the current step (again to abort)", self.signal_name)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)  # type: ignore[arg-type]


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of every parameter and buffer (bytes), to compare ranks or runs."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class _Trainer:
    """State of one run; :func:`run_training` is the public entry point."""

    def __init__(self, cfg: TrainConfig, resume_state: dict | None,
                 instance_labeler: InstanceLabelerFactory | None = None) -> None:
        cfg.check()
        if cfg.val_mode == "instances" and instance_labeler is None:
            raise DeconvGuiError("val_mode 'instances' needs the inference pipeline; run it through "
                                 "`deconv-gui train` or use val_mode whole")
        self.cfg = cfg
        self.instance_labeler = instance_labeler
        self.device = resolve_device(cfg.device)
        self.dist = dist_utils.setup(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.main = self.dist.is_main
        self.run_dir = Path(cfg.run_dir)
        self.metrics = MetricsLog(self.run_dir, enabled=False)  # replaced once the folder exists
        try:
            self._setup(cfg, resume_state)
        except BaseException:
            self.close()
            dist_utils.teardown(self.dist)
            raise

    def _setup(self, cfg: TrainConfig, resume_state: dict | None) -> None:
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        # Datasets first: a wrong --data fails before anything is written. Each slow step says what it does
        # (the app's training panel shows the last line until the first iteration is recorded).
        log.info("loading the dataset %s (%s split%s)…", cfg.data, cfg.train_split,
                 ", reading every image into memory" if cfg.cache_images else "")
        self.train_ds = open_dataset(cfg.data, cfg.format, cfg.train_split, cache_images=cfg.cache_images)
        self.val_ds = open_dataset(cfg.data, cfg.format, cfg.val_split) if cfg.val_split else None
        self.class_names = self.train_ds.class_names
        if self.main:
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise DeconvGuiError(f"cannot create the run folder ({err.strerror})", self.run_dir) from None
            clean_stale_temps(self.run_dir)  # e.g. half a state.pt from a kill during a save
            atomic_write_bytes(self.run_dir / "config.yaml", config_yaml(cfg).encode())
            self._log_handler = attach_log_file(self.run_dir)
        dist_utils.barrier(self.dist)
        self.autocast = autocast_factory(cfg.precision, self.device)
        self.channels_last = use_channels_last(cfg.channels_last, self.device)
        log.info("preparing the %s training samples%s…", cfg.stage,
                 " (Edge Box proposals of every image: slow the first time, cached after)" if cfg.stage == "stage2"
                 else "")
        self.samples = train_samples(cfg, self.train_ds)
        if len(self.samples) == 0:
            raise DeconvGuiError(f"the {cfg.stage} stage found no training samples in {cfg.train_split}", cfg.data)

        log.info("building the %s ×%g model…", cfg.arch, cfg.width)
        model = make_model(cfg, len(self.class_names))
        self.proposals = inherited_proposals(cfg.init) if cfg.init else {}
        if cfg.init and resume_state is None:
            weights = init_weights(cfg.init, architecture=cfg.arch, width=cfg.width, class_names=self.class_names)
            check_fits(weights, model, cfg.init)
            model.load_state_dict(weights)
            log.info("initialised from %s", cfg.init)
        state_path = self.run_dir / STATE_FILE
        if resume_state is not None:
            check_fits(resume_state["model"], model, state_path)
            model.load_state_dict(resume_state["model"])
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model  # the bare module (what checkpoints hold)
        self.net = dist_utils.wrap_model(model, self.dist, self.device, cfg.sync_bn)
        if cfg.sync_bn and self.dist.enabled:
            self.model = self.net.module  # SyncBN conversion made new modules
        if cfg.class_weighting != "none":
            log.info("counting class pixels over %d labels for the class weights…", len(self.train_ds))
        weights = class_weights(cfg, self.train_ds)
        self.criterion = SegmentationLoss(None if weights is None else weights.numpy(), cfg.aux_weight).to(self.device)
        self.optimizer = build_optimizer(self.model, cfg)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.precision == "fp16")
        meta = model_meta(cfg, self.train_ds, {})
        self.normalize = Normalizer(meta.mean, meta.std, self.device, self.channels_last, meta.channel_order)
        self.start = 0
        if resume_state is None:
            seed_python_numpy(cfg.seed)
        self.best_miou = math.nan
        self.last_val: dict = {}
        if resume_state is not None:
            try:
                self.optimizer.load_state_dict(resume_state["optimizer"])
                if resume_state.get("scaler"):
                    self.scaler.load_state_dict(resume_state["scaler"])
                self.start = int(resume_state["iteration"])
                self.best_miou = float(resume_state["best_miou"])
                restore_rng(resume_state["rng"])
            except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as err:
                first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
                raise CheckpointError(f"training state does not fit this run ({first})", state_path) from None
        # Last: a resume cuts metrics.jsonl back to the checkpoint only once the state proved usable.
        self.metrics = MetricsLog(self.run_dir, enabled=self.main,
                                  resume_at=None if resume_state is None else self.start)

    # -- pieces -------------------------------------------------------------------------------------------
    def _batches(self, start: int, end: int) -> torch.utils.data.DataLoader:
        sampler = StepBatches(len(self.samples), batch_size=self.cfg.batch_size, grad_accum=self.cfg.grad_accum,
                              seed=self.cfg.seed, start_step=start, end_step=end, rank=self.dist.rank,
                              world_size=self.dist.world_size)
        # Own generator: creating the iterator must not draw from the global torch RNG (resume exactness).
        return torch.utils.data.DataLoader(
            EpochIndexed(self.samples), batch_sampler=sampler, num_workers=self.cfg.workers,
            pin_memory=self.device.type == "cuda", generator=torch.Generator().manual_seed(self.cfg.seed),
        )

    def _epoch(self, iteration: int) -> int:
        return iteration * self.cfg.samples_per_step * self.dist.world_size // len(self.samples)

    def _state_path(self, iteration: int) -> Path | None:
        dist_utils.barrier(self.dist)
        if not self.main:
            return None
        return save_state(self.run_dir, model=self.model, optimizer=self.optimizer,
                          scaler_state=self.scaler.state_dict() if self.scaler.is_enabled() else {},
                          iteration=iteration, epoch=self._epoch(iteration), best_miou=self.best_miou,
                          config=self.cfg.to_dict())

    def _checkpoint(self, iteration: int) -> None:
        path = self._state_path(iteration)
        self.metrics.event("checkpoint", iteration=iteration, path=path, message="training state saved")

    def _validate(self, iteration: int) -> None:
        if self.val_ds is None:
            return
        from deconv_gui.training.samples import EvalImages

        if self.cfg.val_mode == "instances" and self.instance_labeler is not None:
            label_image = self.instance_labeler(self.model, model_meta(self.cfg, self.train_ds, {}), self.device)
            cm = evaluate_labeler(label_image, self.val_ds, num_classes=len(self.class_names),
                                  limit=self.cfg.val_limit, dist_info=self.dist, device=self.device)
        else:
            cm = evaluate_whole(self.model, EvalImages(self.val_ds), arch=self.cfg.arch,
                                num_classes=len(self.class_names), normalize=self.normalize,
                                autocast=self.autocast, limit=self.cfg.val_limit, dist_info=self.dist,
                                scale=self.cfg.whole_scale)
        self.net.train()
        record = val_record(cm, self.class_names)
        self.last_val = {"iteration": iteration, **record}
        self.metrics.val(iteration=iteration, **record)
        miou = record["miou"]
        log.info("iteration %d: val mIoU %s, pixel accuracy %s", iteration,
                 "n/a" if miou is None else f"{miou:.4f}",
                 "n/a" if record["pixel_acc"] is None else f"{record['pixel_acc']:.4f}")
        if miou is not None and (math.isnan(self.best_miou) or miou > self.best_miou):
            self.best_miou = miou
            if self.main:
                path = export_inference(self.run_dir / BEST_FILE, self.model,
                                        model_meta(self.cfg, self.train_ds, self.last_val, self.proposals), half=self.cfg.fp16_export)
                self.metrics.event("best", iteration=iteration, path=path, message=f"val mIoU {miou:.4f}")

    def _step(self, batches) -> tuple[float, float]:  # noqa: ANN001 - the loader's iterator
        """One optimizer step: ``grad_accum`` micro-batches; returns (mean loss, pixel accuracy)."""
        cfg = self.cfg
        self.optimizer.zero_grad(set_to_none=True)
        total_loss, correct, counted = 0.0, 0, 0
        for a in range(cfg.grad_accum):
            images, labels = next(batches)
            x = self.normalize(images)
            y = labels.to(self.device, non_blocking=True)
            sync = a == cfg.grad_accum - 1 or not self.dist.enabled
            ctx = self.net.no_sync() if not sync else contextlib.nullcontext()
            with ctx:
                with self.autocast():
                    out = self.net(x)
                loss = self.criterion(out, y) / cfg.grad_accum
                self.scaler.scale(loss).backward()
            total_loss += float(loss.detach())
            with torch.no_grad():
                valid = y != 255
                correct += int((out["out"].argmax(1)[valid] == y[valid]).sum())
                counted += int(valid.sum())
        if cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return total_loss, correct / max(counted, 1)

    def _precise_bn(self, end: int) -> None:
        n = self.cfg.precise_bn_batches
        if n <= 0:
            return
        loader = StepBatches(len(self.samples), batch_size=self.cfg.batch_size, grad_accum=1, seed=self.cfg.seed,
                             start_step=end, end_step=end + n, rank=self.dist.rank, world_size=self.dist.world_size)
        data = EpochIndexed(self.samples)
        inputs = (self.normalize(torch.stack([data[k][0] for k in batch])) for batch in loader)
        with self.autocast():
            used = recompute_bn_stats(self.model, inputs, n)
        dist_utils.average_buffers(self.model, self.dist)
        log.info("precise BN from %d batches", used)

    # -- the run ------------------------------------------------------------------------------------------
    def run(self, stop: StopRequest) -> RunResult:
        cfg = self.cfg
        end = cfg.iterations
        self.metrics.event("resumed" if self.start else "started", iteration=self.start,
                           message=f"{cfg.arch} width {cfg.width}, {cfg.stage}, {len(self.samples)} samples/epoch, "
                                   f"{self.dist.world_size} process(es) on {self.device}")
        batches = iter(self._batches(self.start, end))
        self.net.train()
        bar = tqdm(total=end, initial=self.start, unit="it", disable=None if self.main else True, dynamic_ncols=True)
        window_loss, window_acc, window_n = 0.0, 0.0, 0
        t_window = t_start = time.perf_counter()
        iteration = self.start
        for step in range(self.start, end):
            lr = cfg.lr * lr_factor(step, cfg)
            set_lr(self.optimizer, lr)
            loss, acc = self._step(batches)
            if not math.isfinite(loss):
                raise DeconvGuiError(f"the loss became {loss} at iteration {step + 1}; lower --lr or check the data")
            iteration = step + 1
            window_loss, window_acc, window_n = window_loss + loss, window_acc + acc, window_n + 1
            bar.update(1)
            # The first iteration is recorded too: the app shows iterations and an ETA at once instead of
            # "starting…" until log_every iterations (a minute and more on a CPU) have passed.
            if iteration % cfg.log_every == 0 or iteration == end or iteration == self.start + 1:
                now = time.perf_counter()
                ips = window_n * cfg.samples_per_step * self.dist.world_size / max(now - t_window, 1e-9)
                per_it = (now - t_start) / (iteration - self.start)
                self.metrics.train(iteration=iteration, max_iterations=end, epoch=self._epoch(iteration),
                                   loss=window_loss / window_n, lr=lr, pixel_acc=window_acc / window_n,
                                   images_per_s=ips, eta_s=per_it * (end - iteration))
                bar.set_postfix(loss=f"{window_loss / window_n:.4f}", lr=f"{lr:.2e}", ips=f"{ips:.1f}")
                window_loss, window_acc, window_n, t_window = 0.0, 0.0, 0, now
            stopping = dist_utils.any_rank(stop.requested, self.dist, self.device)
            if cfg.val_every > 0 and iteration % cfg.val_every == 0 and iteration < end and not stopping:
                self._validate(iteration)
            if stopping or (iteration % cfg.checkpoint_every == 0 and iteration < end):
                self._checkpoint(iteration)
            if stopping:
                bar.close()
                self.metrics.event("stopped", iteration=iteration, path=self.run_dir / "state.pt",
                                   message=f"stopped by {stop.signal_name or 'request'}; resume with --resume")
                return RunResult("stopped", iteration, self.run_dir, self.best_miou, None, self.main)
        bar.close()
        self._precise_bn(end)
        self._validate(iteration)
        self._checkpoint(iteration)
        final = None
        if self.main:
            final = export_inference(self.run_dir / FINAL_FILE, self.model,
                                     model_meta(cfg, self.train_ds, self.last_val, self.proposals), half=cfg.fp16_export)
        digests = dist_utils.gather_strings(weights_digest(self.model), self.dist)
        if self.main and self.dist.enabled:
            atomic_write_bytes(self.run_dir / RANKS_FILE, json.dumps({"sha256": digests}).encode())
            if len(set(digests)) != 1:
                log.error("ranks ended with different weights: %s", digests)
        self.metrics.event("finished", iteration=iteration, path=final,
                           message=f"best val mIoU {self.best_miou:.4f}" if not math.isnan(self.best_miou)
                           else "finished")
        return RunResult("finished", iteration, self.run_dir, self.best_miou, final, self.main)

    def close(self) -> None:
        self.metrics.close()
        if hasattr(self, "_log_handler"):
            logging.getLogger("deconv_gui").removeHandler(self._log_handler)
            self._log_handler.close()


def run_training(cfg: TrainConfig, *, resume: bool = False,
                 instance_labeler: InstanceLabelerFactory | None = None) -> RunResult:
    """Train per ``cfg`` (or continue ``cfg.run_dir``'s run with ``resume=True``; see :func:`resume_config`).

    ``instance_labeler`` serves ``val_mode = instances`` (see :data:`InstanceLabelerFactory`).
    """
    state = load_state(cfg.run_dir) if resume else None
    if not resume and (Path(cfg.run_dir) / "state.pt").exists():
        raise DeconvGuiError("already holds a training run; pass --resume to continue it or choose another "
                             "--run-dir", cfg.run_dir)
    threads = torch.get_num_threads()
    try:
        trainer = _Trainer(cfg, state, instance_labeler)
    except BaseException:
        torch.set_num_threads(threads)
        raise
    try:
        with StopRequest() as stop:
            return trainer.run(stop)
    except Exception as err:  # user errors and crashes alike end the run with an "error" event
        trainer.metrics.try_event("error", iteration=trainer.start, message=str(err) or type(err).__name__)
        raise
    except KeyboardInterrupt:
        trainer.metrics.try_event("error", iteration=trainer.start, message="interrupted")
        raise
    finally:
        trainer.close()
        dist_utils.teardown(trainer.dist)
        torch.set_num_threads(threads)


def resume_config(run_dir: str | Path, changes: dict | None = None) -> TrainConfig:
    """The config stored in ``run_dir/state.pt`` with ``changes`` applied (only :data:`RESUMABLE_CHANGES`)."""
    from deconv_gui.training.config import RESUMABLE_CHANGES, apply_values, config_from_dict

    state = load_state(run_dir)
    cfg = config_from_dict(state["config"])
    changes = dict(changes or {})
    changes["run_dir"] = str(run_dir)
    current = cfg.to_dict()
    bad = sorted(k for k, v in changes.items() if k not in RESUMABLE_CHANGES and current.get(k) != v)
    if bad:
        raise DeconvGuiError(f"cannot change {', '.join(bad)} when resuming (only {', '.join(sorted(RESUMABLE_CHANGES))})",
                             run_dir)
    return apply_values(cfg, changes, "--resume overrides")


def seed_python_numpy(seed: int) -> None:
    """Seed NumPy's global RNG and Python's ``random`` (items use their own generators; this covers the rest)."""
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
