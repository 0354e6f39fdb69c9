"""Throw-away virtual environments for peer tools, and the JSON hand-off with the processes run in them.

Each peer lives in benchmarks/.venv-<name> (git-ignored), so its pins never touch scalefit's environment.
It is created on first use and reused while it still imports the pinned version; pip's output goes to
stderr so that a caller's stdout stays machine-readable. A peer that cannot be installed here raises
`PeerUnavailable`, whose message says why, so a benchmark can report it as skipped instead of failing.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]


class PeerUnavailable(RuntimeError):
    """The peer cannot be installed or run on this machine (the message says why)."""


@dataclass(frozen=True)
class PeerEnv:
    """A pinned peer in its own venv.

    name: the venv suffix (benchmarks/.venv-<name>); dist/version: what importlib.metadata must report;
    install: the pip arguments that install it (a requirement string or a local source path with extras);
    min_python: the oldest interpreter the peer accepts, when it is newer than the one running us.
    """

    name: str
    dist: str
    version: str
    install: tuple[str, ...]
    min_python: tuple[int, int] = (3, 10)

    @property
    def path(self) -> Path:
        return BENCH / f".venv-{self.name}"

    @property
    def python(self) -> Path:
        return self.path / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")

    def installed_version(self) -> str | None:
        if not self.python.exists():
            return None
        probe = subprocess.run([str(self.python), "-c", f"import importlib.metadata as m; print(m.version({self.dist!r}))"],
                               capture_output=True, text=True)
        return probe.stdout.strip() if probe.returncode == 0 else None

    def ensure(self) -> Path:
        """The venv's python, creating the venv and installing the peer first if needed."""
        if self.installed_version() == self.version:
            return self.python
        base = find_python(self.min_python)
        print(f"peers: creating {self.path} with {self.dist}=={self.version} (Python {'.'.join(map(str, python_version(base)))})",
              file=sys.stderr)
        steps = {"python -m venv": [base, "-m", "venv", "--clear", str(self.path)],
                 "pip install": [str(self.python), "-m", "pip", "install", "--quiet", *self.install]}
        for label, cmd in steps.items():
            if subprocess.run(cmd, stdout=sys.stderr).returncode != 0:
                raise PeerUnavailable(f"could not install {self.dist}=={self.version} into {self.path}: {label} failed")
        found = self.installed_version()
        if found != self.version:
            raise PeerUnavailable(f"{self.path} has {self.dist} {found or 'missing'}, expected {self.version}")
        return self.python


def python_version(exe: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([exe, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = out.stdout.split()
    return (int(parts[0]), int(parts[1])) if out.returncode == 0 and len(parts) == 2 else None


def find_python(minimum: tuple[int, int]) -> str:
    """An interpreter at least `minimum`: ours, else pythonX.Y on PATH, else one that pyenv installed.

    pyenv's shims on PATH fail unless that version is selected, so each candidate is run, not just found.
    """
    if sys.version_info[:2] >= minimum:
        return sys.executable
    newer = [f"python3.{m}" for m in range(20, minimum[1] - 1, -1)]
    candidates = [p for p in (shutil.which(name) for name in newer) if p]
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(os.path.join(pyenv_root, "versions", "3.*", "bin", "python3")), reverse=True)
    for exe in candidates:
        found = python_version(exe)
        if found and found >= minimum:
            return exe
    raise PeerUnavailable(f"needs Python >= {minimum[0]}.{minimum[1]} and none was found (this is {sys.version.split()[0]})")


@dataclass(frozen=True)
class Timed:
    """One whole process: its JSON output, wall seconds, and its own peak resident memory."""

    out: dict
    seconds: float
    peak_rss: int | None  # bytes; None where the platform cannot tell one child's peak


def run_json(cmd: list[str], *, env: dict | None = None, timeout: float | None = None) -> Timed:
    """Run `cmd` as one whole process, timed from spawn to exit; its stdout, or its last line, must be a JSON object.

    On Linux the child is reaped with os.wait4, which gives that child's own ru_maxrss rather than the
    maximum over every child this process ever had. Linux carries the peak over exec, so it is never
    below this process's own resident size when it spawned the child: keep the caller lean.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, text=True)
        killer = threading.Timer(timeout, proc.kill) if timeout else None
        if killer:
            killer.start()
        peak = None
        try:
            if hasattr(os, "wait4"):
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
            else:
                proc.wait()
        finally:
            if killer:
                killer.cancel()
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if timeout and seconds >= timeout:
        raise PeerUnavailable(f"ran past {timeout:.0f} s")
    if proc.returncode != 0:
        last = (stderr.strip().splitlines() or ["no output"])[-1]
        raise PeerUnavailable(f"exit {proc.returncode}: {last}")
    parsed = None
    lines = stdout.strip().splitlines()
    for text in (stdout, lines[-1] if lines else ""):  # the whole of stdout (pretty-printed), else its last line
        try:
            parsed = json.loads(text)
            break
        except json.JSONDecodeError:
            continue
    if not isinstance(parsed, dict):
        raise PeerUnavailable(f"no JSON object on the stdout of {' '.join(map(str, cmd[:3]))} ...")
    return Timed(parsed, seconds, peak)
