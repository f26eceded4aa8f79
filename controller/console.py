"""Rich consoles for command output on stdout."""

from __future__ import annotations

from rich.console import Console


class StdoutConsole(Console):
    """A console on stdout that lets a closed pipe reach the ``snowload`` command's own
    handler (a quiet exit 141): rich's default turns it into ``SystemExit(1)``."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError
