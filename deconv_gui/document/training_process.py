"""The training process, started so that it outlives the app: its own session, output to a file.

Why not ``QProcess``: a QProcess kills its child when the QProcess object is destroyed (window closed, app
crash unwinding), and it pipes stdout/stderr, so a training run writing to a dead GUI's pipe dies of
``BrokenPipeError``. ``QProcess.startDetached`` avoids both but loses the exit status. Here the child is a
``subprocess.Popen`` in a new session (POSIX: ``setsid``; its own process group, so a signal reaches the
trainer and its data-loader workers, and a Ctrl-C in the app's terminal does not) with stdout and stderr
appended to ``RUN_DIR/console.log``. While the app lives it reaps the child and knows its exit status; if the
app closes or crashes the training goes on, and a later app can :meth:`TrainingProcess.attach` to it again
through ``RUN_DIR/trainer.pid`` (stop it, watch its metrics; the exit status is then unknown).

Stop = SIGTERM to the process group (the trainer saves ``state.pt``, logs ``stopped`` and exits); kill =
SIGKILL to the group (the whole tree). On Windows: CTRL_BREAK_EVENT and ``taskkill /T /F``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from deconv_gui.core.errors import DeconvGuiError
from deconv_gui.document.training_run import CONSOLE_FILE

log = logging.getLogger(__name__)

PID_FILE = "trainer.pid"
_WINDOWS = os.name == "nt"


def _package_root() -> str:
    """The folder holding the ``deconv_gui`` package the app runs, so the child imports the same code."""
    import deconv_gui

    return str(Path(deconv_gui.__file__).resolve().parent.parent)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"  # the log view shows output as it happens
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH", "")) if p)
    return env


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (Linux: from /proc; elsewhere ``kill(pid, 0)``)."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            text = stat.read_text()
        except OSError:
            return False
        return text.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class TrainingProcess:
    """One training process: :meth:`start` a command line in a run folder, :meth:`poll`, :meth:`terminate`,
    :meth:`kill`. ``returncode`` is None while it runs (and for an attached process whose status is unknown).
    """

    def __init__(self, run_dir: Path, argv: list[str], pid: int, popen: subprocess.Popen | None) -> None:
        self.run_dir = Path(run_dir)
        self.argv = list(argv)
        self.pid = pid
        self._popen = popen
        self._done = False
        self.returncode: int | None = None
        self.terminate_requested = False
        self.kill_requested = False

    @classmethod
    def start(cls, argv: list[str], run_dir: Path, *, cwd: Path | None = None) -> TrainingProcess:
        """Start ``argv`` with output appended to ``run_dir/console.log``; DeconvGuiError if it cannot start."""
        run_dir = Path(run_dir)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            console = open(run_dir / CONSOLE_FILE, "ab")  # noqa: SIM115 - handed to the child, closed below
        except OSError as exc:
            raise DeconvGuiError(f"cannot write to the run folder: {exc.strerror or exc}", run_dir) from exc
        kwargs: dict = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if _WINDOWS else \
            {"start_new_session": True}
        try:
            with console:
                console.write(f"$ {subprocess.list2cmdline(argv)}\n".encode())
                console.flush()
                popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console, stderr=console,
                                         cwd=cwd, env=_child_env(), **kwargs)
        except OSError as exc:
            raise DeconvGuiError(f"cannot start {argv[0]}: {exc.strerror or exc}", run_dir) from exc
        proc = cls(run_dir, argv, popen.pid, popen)
        proc._write_pid_file()
        log.info("started training process %d: %s", popen.pid, subprocess.list2cmdline(argv))
        return proc

    @classmethod
    def attach(cls, run_dir: Path) -> TrainingProcess | None:
        """The still running process of ``run_dir`` (started by an earlier app), or None."""
        try:
            info = json.loads((Path(run_dir) / PID_FILE).read_text())
            pid = int(info["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not _pid_alive(pid) or not _cmdline_matches(pid, info.get("argv") or []):
            return None
        return cls(run_dir, list(info.get("argv") or []), pid, None)

    def _write_pid_file(self) -> None:
        try:
            (self.run_dir / PID_FILE).write_text(json.dumps({"pid": self.pid, "argv": self.argv,
                                                             "started": time.time()}))
        except OSError as exc:
            log.warning("cannot write %s: %s", self.run_dir / PID_FILE, exc)

    @property
    def attached(self) -> bool:
        """True for a process this app did not start (no exit status)."""
        return self._popen is None

    def poll(self) -> bool:
        """True while the process runs; reaps it and sets ``returncode`` once it ended."""
        if self._done:
            return False
        if self._popen is not None:
            code = self._popen.poll()
            if code is None:
                return True
            self.returncode = code
        elif _pid_alive(self.pid):
            return True
        self._done = True
        try:
            (self.run_dir / PID_FILE).unlink(missing_ok=True)
        except OSError:
            pass
        return False

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the end; True if it ended (for scripts and tests; the app polls)."""
        deadline = time.monotonic() + timeout
        while self.poll():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def terminate(self) -> None:
        """Ask the trainer to stop (it saves a checkpoint first)."""
        self.terminate_requested = True
        if _WINDOWS:
            self._signal_windows(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
        else:
            self._signal_group(signal.SIGTERM)

    def kill(self) -> None:
        """Kill the trainer and every process it started, now."""
        self.kill_requested = True
        if _WINDOWS:
            subprocess.run(["taskkill", "/T", "/F", "/PID", str(self.pid)], capture_output=True, check=False)
        else:
            self._signal_group(signal.SIGKILL)

    def _signal_group(self, sig: int) -> None:
        if not self.poll():
            return
        try:
            os.killpg(self.pid, sig)  # the child leads its own session/group (start_new_session)
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(self.pid, sig)

    def _signal_windows(self, sig: int) -> None:
        if self._popen is not None:
            self._popen.send_signal(sig)
        else:
            os.kill(self.pid, sig)


def _cmdline_matches(pid: int, argv: list[str]) -> bool:
    """Guard against a reused pid: where /proc exists, the process's command line must equal ``argv``."""
    path = Path(f"/proc/{pid}/cmdline")
    if not path.exists() or not argv:
        return True
    try:
        found = path.read_bytes().split(b"\0")
    except OSError:
        return False
    return [a.decode(errors="replace") for a in found if a] == [str(a) for a in argv]

