"""A small multi-host network for tests: Linux network namespaces on one bridge.

Every host is a network namespace with its own ``eth0`` (a veth pair) plugged into a
bridge that lives in a namespace of its own (the "switch"), so nothing is added to the
machine's own network: no address, no route, no interface outside the namespaces, and
all traffic stays between them. Processes start inside a host with ``ip netns exec``.

Cutting a host pulls its cable at the switch (the switch port goes down): packets to and
from it vanish without an error, TCP retransmits, connections hang as they do on a real
partition; healing plugs it back in.

Names carry this process's pid (``slnet-<pid>-<n>-<host>``), so runs never collide; a
lab whose creator died (a crashed run) is swept away by the next one: every process in
its namespaces is killed, then the namespaces are deleted (which deletes their links).

Requires root and iproute2 (``ip``); :func:`unavailable` says why not, for a skip.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO

SUBNET = "10.200.0"
_counter = itertools.count(1)
_NAME_RE = re.compile(r"^slnet-(\d+)-\d+-")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def unavailable() -> str | None:
    """Why namespaces cannot be used here (None if they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    probe = f"slnet-{os.getpid()}-probe"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def _namespaces() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _kill_all_in(ns: str) -> None:
    pids = _ip("netns", "pids", ns, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def sweep_stale() -> None:
    """Remove labs (and their processes) left by test processes that are gone."""
    for ns in _namespaces():
        m = _NAME_RE.match(ns)
        if m is None or _alive(int(m.group(1))):
            continue
        _kill_all_in(ns)
        _ip("netns", "del", ns, check=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Host:
    name: str
    ns: str
    ip: str

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.ns]


@dataclass
class Netlab:
    """A switch and the hosts plugged into it. Use as a context manager (or call
    close()): processes started through :meth:`popen` are stopped, namespaces removed."""

    prefix: str = field(default_factory=lambda: f"slnet-{os.getpid()}-{next(_counter)}")
    hosts: dict[str, Host] = field(default_factory=dict)
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.switch = f"{self.prefix}-switch"
        self._made: list[str] = []
        self._cut: set[str] = set()

    def __enter__(self) -> Netlab:
        sweep_stale()
        self._add_ns(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _add_ns(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self._made.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")

    def add_host(self, name: str, octet: int) -> Host:
        """A host ``name`` at ``10.200.0.<octet>``, plugged into the switch."""
        host = Host(name, f"{self.prefix}-{name}", f"{SUBNET}.{octet}")
        self._add_ns(host.ns)
        port = f"p-{name}"
        _ip(
            "-n", self.switch, "link", "add", port, "type", "veth", "peer", "eth0", "netns", host.ns
        )
        _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
        _ip("-n", host.ns, "addr", "add", f"{host.ip}/24", "dev", "eth0")
        _ip("-n", host.ns, "link", "set", "eth0", "up")
        self.hosts[name] = host
        return host

    # -- partitions ----------------------------------------------------------------------

    def cut(self, name: str) -> None:
        """Unplug ``name`` at the switch: nothing reaches it, nothing leaves it."""
        _ip("-n", self.switch, "link", "set", f"p-{name}", "down")
        self._cut.add(name)

    def heal(self, name: str) -> None:
        _ip("-n", self.switch, "link", "set", f"p-{name}", "up")
        self._cut.discard(name)

    # -- processes -----------------------------------------------------------------------

    def popen(
        self,
        host: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        *,
        stdout: int | None = subprocess.PIPE,
        stderr: int | None = None,
    ) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [*self.hosts[host].exec_prefix(), *argv],
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def heal_all(self) -> None:
        for name in list(self._cut):
            with contextlib.suppress(subprocess.CalledProcessError):
                self.heal(name)

    def stop_processes(self) -> None:
        """SIGTERM what :meth:`popen` started (SIGKILL after 10 s)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()

    def close(self) -> None:
        self.heal_all()
        self.stop_processes()
        for ns in reversed(self._made):
            _kill_all_in(ns)  # whatever else still runs there (e.g. a server's children)
            _ip("netns", "del", ns, check=False)
        self._made.clear()


class LineTap:
    """Every line a process writes to one of its pipes, read by a thread (never blocks the
    test), kept for later assertions."""

    def __init__(self, pipe: IO[str] | None) -> None:
        assert pipe is not None
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, marker: str, timeout_s: float) -> str:
        """The first line containing ``marker`` (AssertionError after the deadline)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for line in self.lines:
                    if marker in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line with {marker!r} within {timeout_s}s")
                self._cond.wait(left)

    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)
