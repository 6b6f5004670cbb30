"""The controller's model commands: loading weights, importing a Caffe model, the ensemble partner, presets, the
device and the proposal settings, and adopting a loaded model (its CRF settings, its notes, its errors).

A mixin of :class:`deconv_gui.ui.controller.Controller` (it uses the controller's engine, preferences, opened
sessions, ``_submit``, ``segment``, ``_recombine`` and signals); kept apart so that the controller stays about
opening, running and its worker plumbing.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from deconv_gui.core.errors import DeconvGuiError
from deconv_gui.document.models import ModelPreset, describe_loaded
from deconv_gui.inference.runner import ModelRunner
from deconv_gui.inference.tuning import crf_params_from_meta
from deconv_gui.postprocess.crf import CRFParams


class ModelLoading:
    """Model commands of the controller (see the module docstring)."""

    # --- models ------------------------------------------------------------------------------------------------

    def load_weights(self, path: Path) -> None:
        path = Path(path)
        self._submit("model", self.engine.load_job(path, self.engine.device),
                     lambda runner: self._model_loaded(runner, path, partner=False))

    def import_caffe(self, source: Path, out: Path) -> None:
        """Convert a ``.caffemodel`` to the checkpoint ``out`` on the worker, then use it as the model."""
        out = Path(out)
        self._submit("model", self.engine.import_caffe_job(Path(source), out, self.engine.device),
                     lambda runner: self._model_loaded(runner, out, partner=False))

    def _load_partner_file(self, path: Path) -> None:
        self._submit("partner_model", self.engine.load_job(path, self.engine.device),
                     lambda runner: self._model_loaded(runner, path, partner=True))

    def load_preset(self, preset: ModelPreset) -> None:
        """Load a bundled model and its ensemble partner (a preset without one drops the current partner)."""
        weights, partner = preset.paths()
        self.load_weights(weights)
        self.load_partner(partner)

    def loaded_summary(self) -> str:
        """E.g. "CamVid EDeconvNet (DeconvNet + FCN-8s partner) — trained on CamVid road scenes"."""
        e = self.engine
        return describe_loaded(e.weights, e.runner.meta if e.runner is not None else None, e.partner_weights,
                               e.partner.meta if e.partner is not None else None)

    def load_partner(self, path: Path | None) -> None:
        if path is None:
            had = self.engine.partner is not None
            self.engine.set_partner(None, None)
            for session in self._sessions.values():
                session.with_partner_scores(None)
            self.partner_changed.emit(False)
            if had:
                self.models_described.emit(self.loaded_summary())
            self._recombine()
            return
        self._load_partner_file(Path(path))

    def set_device(self, device: str) -> None:
        """Reload the model(s) on ``device`` (auto/cpu/cuda)."""
        self.engine.device = self.prefs.device = device
        if self.engine.weights is not None:
            self.load_weights(self.engine.weights)
        if self.engine.partner_weights is not None:
            self._load_partner_file(self.engine.partner_weights)

    def set_num_proposals(self, n: int) -> None:
        self.prefs.num_proposals = int(n)
        self.engine.set_proposals(int(n), self.prefs.edge_model_file)

    def set_edge_model_file(self, path: str | None) -> None:
        self.prefs.edge_model_file = path or None
        self.engine.set_proposals(self.engine.num_proposals, path or None)

    # --- a model loaded ----------------------------------------------------------------------------------------

    def _model_loaded(self, runner: ModelRunner, path: Path, *, partner: bool) -> None:
        lane = "partner_model" if partner else "model"
        note = None
        try:
            if not partner:
                note = self.engine.set_runner(runner, path)
                self.prefs.add_recent_weights(path)
            else:
                self.engine.set_partner(runner, path)
        except DeconvGuiError as exc:
            self.error.emit(str(exc))
            return
        if not partner:
            self._use_model_crf(runner)
            self.model_proposals.emit(self.engine.model_top_n())
        self.model_changed.emit(self.engine.describe())
        self.partner_changed.emit(self.engine.partner is not None)
        self.models_described.emit(self.loaded_summary())
        if note:  # the partner was set aside (other classes) or came back: said, never silent
            self.status.emit(note)
        recognised = runner.meta.train_config.get("recognised")
        if recognised:  # an imported Caffe / torchvision model: say what it was recognised as
            self.status.emit(f"{path.name}: {recognised}")
        # Cached maps came from another model (or lack the partner's): segment again.
        for session in self._sessions.values():
            if lane == "model":
                session.raw = session.shown = None
                session.state = "not run"
                self._set_state(session.path, "not run")
            else:
                session.with_partner_scores(None)
        if self.session is not None:
            if lane == "model":
                self.image_opened.emit(self.session)
                self.segment()
            else:
                self._recombine()

    def _use_model_crf(self, runner: ModelRunner) -> None:
        """The CRF settings tune-crf stored in the model (``meta.crf``) apply unless the user chose their own in
        the settings (preferences other than the defaults); a model without them brings back the default
        (DeconvNet's VOC values)."""
        if self.prefs.crf_params() != CRFParams():
            return
        params = crf_params_from_meta(runner.meta.crf) or CRFParams()
        if params != self.choices.crf_params:
            self.choices = replace(self.choices, crf_params=params)
            self.choices_changed.emit(self.choices)
