"""Shared by the benchmarks: what machine this is, and how busy the rest of it was.

The benchmark machine has 2 cores shared by the load generator, its controller, the
"database" (in-process SQLite) and anything else running on the host. ``CpuWatch``
measures, for one measurement window, how many cores this benchmark's own process tree
used and how many were used by everything else (other processes), so that a number
taken on a busy host can be recognised as such.
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass
from importlib import metadata

import psutil


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_revision() -> str:
    """The commit under test, with "+dirty" when the working tree has changes."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        rev = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def describe() -> dict[str, object]:
    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "grpcio": package_version("grpcio"),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "git": git_revision(),
    }


def print_header(title: str) -> dict[str, object]:
    env = describe()
    print(f"# {title}")
    print(f"platform:   {env['platform']}")
    print(f"cpu:        {env['cpu_model']}, os.cpu_count() = {env['cpu_count']}")
    print(f"memory:     {env['memory_gib']} GiB")
    print(f"python:     {env['implementation']} {env['python']}")
    print(f"grpcio:     {env['grpcio']}")
    print(f"snowload:   git {env['git']}")
    print(f"load avg:   {env['loadavg_1m']} (1 min, at start)")
    print(flush=True)
    return env


def _busy_s() -> float:
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))


def _own_s() -> float:
    """CPU of this process plus every descendant that has been waited for."""
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def wait_for_quiet(max_wait_s: float, threshold_cores: float = 0.3, quiet_s: int = 2) -> float:
    """Wait (at most ``max_wait_s``) until the host's other processes have used fewer than
    ``threshold_cores`` cores for ``quiet_s`` consecutive seconds; returns the load of
    the last one-second window. Call it while this benchmark itself is idle."""
    deadline = time.monotonic() + max_wait_s
    quiet = 0
    while True:
        t0, b0 = time.monotonic(), _busy_s()
        time.sleep(1.0)
        load = (_busy_s() - b0) / (time.monotonic() - t0)
        quiet = quiet + 1 if load < threshold_cores else 0
        if quiet >= quiet_s or time.monotonic() >= deadline:
            return load


@dataclass
class CpuUse:
    wall_s: float
    own_cores: float
    """Average cores used by this benchmark's process tree."""
    other_cores: float
    """Average cores used by everything else on the host."""


class CpuWatch:
    """Wrap a measurement whose child processes are all waited for before ``stop``."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self._busy0 = _busy_s()
        self._own0 = _own_s()

    def stop(self) -> CpuUse:
        wall = max(1e-9, time.monotonic() - self._t0)
        busy = _busy_s() - self._busy0
        own = _own_s() - self._own0
        return CpuUse(wall, own / wall, max(0.0, busy - own) / wall)


class LiveCpuWatch:
    """Like CpuWatch, for long-lived processes (e.g. workers that outlive one run): own
    CPU is this process plus ``pids``, read from /proc while they run."""

    def __init__(self, pids: list[int]) -> None:
        self._procs = [psutil.Process()]
        for pid in pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                self._procs.append(psutil.Process(pid))
        self._t0 = time.monotonic()
        self._busy0 = _busy_s()
        self._own0 = self._own()

    def _own(self) -> float:
        total = 0.0
        for p in self._procs:
            try:
                t = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system
        return total

    def stop(self) -> CpuUse:
        wall = max(1e-9, time.monotonic() - self._t0)
        busy = _busy_s() - self._busy0
        own = self._own() - self._own0
        return CpuUse(wall, own / wall, max(0.0, busy - own) / wall)
