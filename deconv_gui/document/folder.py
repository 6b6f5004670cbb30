"""The opened folder: its image files, each one's state, and the current position (Qt-free)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from deconv_gui.document.session import ImageState
from deconv_gui.io.images import IMAGE_SUFFIXES, scan_images


@dataclass
class FolderModel:
    """An ordered list of image files with a state each and a current index (``-1`` when empty); ``errors``:
    why each ``"failed"`` file could not be opened."""

    files: list[Path] = field(default_factory=list)
    states: dict[Path, ImageState] = field(default_factory=dict)
    current: int = -1
    folder: Path | None = None
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    """Entries of the opened folders left out, with the reason (see :class:`~deconv_gui.io.images.ImageListing`)."""
    errors: dict[Path, str] = field(default_factory=dict)

    @classmethod
    def from_paths(cls, paths: list[Path]) -> FolderModel:
        """Expand folders into their images (sorted), keep image files, drop duplicates; order is kept."""
        files: list[Path] = []
        seen: set[Path] = set()
        folder = None
        skipped: list[tuple[Path, str]] = []
        for p in paths:
            p = Path(p)
            if p.is_dir():
                listing = scan_images(p)
                found, folder = listing.images, folder or p
                skipped += listing.skipped
            else:
                found = [p] if p.suffix.lower() in IMAGE_SUFFIXES else []
            for f in found:
                if f not in seen:
                    seen.add(f)
                    files.append(f)
        return cls(files=files, states={f: "not run" for f in files}, current=0 if files else -1, folder=folder,
                   skipped=skipped)

    def skipped_message(self, limit: int = 3) -> str | None:
        """``"skipped N entries: a.png (symbolic link loop); sub (folder ...)"`` or None when nothing was."""
        if not self.skipped:
            return None
        shown = "; ".join(f"{p.name} ({reason})" for p, reason in self.skipped[:limit])
        more = f"; and {len(self.skipped) - limit} more" if len(self.skipped) > limit else ""
        return f"skipped {len(self.skipped)} folder entr{'y' if len(self.skipped) == 1 else 'ies'}: {shown}{more}"

    def extend(self, other: FolderModel) -> list[Path]:
        """Append ``other``'s files that are not listed yet (the current file stays); returns those added."""
        added = [f for f in other.files if f not in self.states]
        self.files.extend(added)
        self.states.update({f: other.states[f] for f in added})
        if self.current < 0 and self.files:
            self.current = 0
        return added

    def mark_failed(self, path: Path, message: str) -> None:
        """``path`` could not be opened, because of ``message``."""
        if Path(path) in self.states:
            self.states[Path(path)] = "failed"
            self.errors[Path(path)] = message

    def mark_opened(self, path: Path) -> bool:
        """``path`` was read (again): a former failure is forgotten (True when there was one)."""
        if self.errors.pop(Path(path), None) is None:
            return False
        self.states[Path(path)] = "not run"
        return True

    def __len__(self) -> int:
        return len(self.files)

    @property
    def current_path(self) -> Path | None:
        return self.files[self.current] if 0 <= self.current < len(self.files) else None

    def index_of(self, path: Path) -> int:
        return self.files.index(Path(path))

    def select(self, index: int) -> Path | None:
        if 0 <= index < len(self.files):
            self.current = index
        return self.current_path

    def next(self) -> Path | None:
        """Move to the next file (stays on the last one)."""
        return self.select(min(self.current + 1, len(self.files) - 1))

    def previous(self) -> Path | None:
        return self.select(max(self.current - 1, 0))

    def set_state(self, path: Path, state: ImageState) -> None:
        if Path(path) in self.states:
            self.states[Path(path)] = state

    def state(self, path: Path) -> ImageState:
        return self.states.get(Path(path), "not run")

    def count(self, state: ImageState) -> int:
        return sum(1 for s in self.states.values() if s == state)
