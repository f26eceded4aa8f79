"""Shared by the benchmarks: what machine this is, and how busy the rest of it was.

The benchmark machine has 2 cores shared by the load generator, its controller, the
"database" (in-process SQLite) and anything else running on the host. ``CpuWatch``
measures, for one measurement window, how many cores this benchmark's own process tree
used and how many were used by everything else (other processes), so that a number
taken on a busy host can be recognised as such.
"""

from __future__ import annotations

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
    }


def print_header(title: str) -> dict[str, object]:
    env = describe()
    print(f"# {title}")
    print(f"platform:   {env['platform']}")
    print(f"cpu:        {env['cpu_model']}, os.cpu_count() = {env['cpu_count']}")
    print(f"memory:     {env['memory_gib']} GiB")
    print(f"python:     {env['implementation']} {env['python']}")
    print(f"grpcio:     {env['grpcio']}")
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


def wait_for_quiet(max_wait_s: float, threshold_cores: float = 0.3) -> float:
    """Wait (at most ``max_wait_s``) for a 1-second window in which the host's other
    processes use fewer than ``threshold_cores`` cores; returns the last window's load.
    Call it while this benchmark itself is idle."""
    deadline = time.monotonic() + max_wait_s
    while True:
        t0, b0 = time.monotonic(), _busy_s()
        time.sleep(1.0)
        load = (_busy_s() - b0) / (time.monotonic() - t0)
        if load < threshold_cores or time.monotonic() >= deadline:
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
