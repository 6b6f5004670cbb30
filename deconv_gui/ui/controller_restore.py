"""Drawn boxes and unticked proposals, kept beside the autosaved edits and re-applied when an image is reopened.

A mixin of :class:`deconv_gui.ui.controller.Controller` (it uses the controller's edits store, box queue and
``_recombine``).
"""

from __future__ import annotations

import numpy as np

from deconv_gui.document.proposal_choices import choices_of, load_choices, save_choices
from deconv_gui.document.session import ImageSession


class ChoiceRestore:
    """Saving and restoring the user's drawn boxes and exclusions per image (see the module docstring)."""

    # --- drawn boxes and exclusions, kept beside the autosaved edits ---------------------------------------------

    def _restore_choices(self, session: ImageSession) -> None:
        """A reopened image: its saved ticks apply to the first run; its drawn boxes are added after it."""
        saved = load_choices(self.edits, session.path, session.image)
        if saved is not None:
            session.user_include = saved.edge_include()
            self._restoring[session.path] = saved

    def _continue_restore(self, session: ImageSession, lane: str) -> None:
        """After a run or a drawn box landed: re-add the saved boxes, then untick the saved ones; else save."""
        saved = self._restoring.get(session.path)
        if saved is None:
            if lane == "add_box":
                self._save_choices(session)
            return
        if session.raw is None:
            return
        drawn = int(session.raw.from_user.sum())
        if session.raw.mode == "instances" and lane == "segment" and saved.boxes and not drawn:
            self._pending_boxes.extend(np.asarray(b, np.float64) for b in saved.boxes)
            self._next_box()
            return
        if session.raw.mode == "instances" and drawn < len(saved.boxes):
            return  # more boxes on their way
        del self._restoring[session.path]
        for index in saved.excluded_boxes():
            if index < len(session.user_include):
                session.set_included(index, False)
        self.status.emit(f"{session.path.name}: restored your {len(saved.boxes)} drawn box(es) and "
                         f"{len(saved.excluded)} unticked proposal(s)")
        if saved.excluded_boxes():
            self._recombine()

    def _save_choices(self, session: ImageSession) -> None:
        if session.raw is not None and session.path not in self._restoring:
            save_choices(self.edits, session.path, session.image,
                         choices_of(session.raw.from_user, session.raw.boxes, session.user_include))
