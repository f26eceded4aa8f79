"""Launch: pick a workload file, see it parsed (or its error with the line), override the
load, start the run (StartRun) and follow it on the Live screen."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Header, Input, OptionList, Static
from textual.widgets.option_list import Option

import snowload
from snowload.durations import format_duration, parse_duration
from snowload.v1 import run_pb2
from snowload.workload import Overrides, Workload, WorkloadError, parse_toml
from tui import format as fmt
from tui.client import ControllerError
from tui.screens.base import AppScreen

OVERRIDES = (
    ("workers", "workers", "integer"),
    ("connections", "connections", "integer"),
    ("warmup", "warmup, e.g. 5s", "text"),
    ("duration", "duration, e.g. 30s", "text"),
)


def example_dirs() -> list[Path]:
    """examples/ of the current directory, then the one next to the installed package."""
    dirs = [Path.cwd() / "examples", Path(snowload.__file__).resolve().parent.parent / "examples"]
    out: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def list_examples() -> list[str]:
    files: list[str] = []
    for d in example_dirs():
        for path in sorted(d.glob("*.toml")):
            try:
                shown = str(path.relative_to(Path.cwd()))
            except ValueError:
                shown = str(path)
            files.append(shown)
    return files


def read_text(path: str) -> str:
    return Path(path).expanduser().read_text(encoding="utf-8")


@dataclass(frozen=True)
class OverrideValues:
    """What the override inputs hold: for StartRun (text) and for validation (numbers)."""

    workers: int = 0
    connections: int = 0
    warmup: str = ""
    duration: str = ""

    def to_overrides(self) -> Overrides:
        return Overrides(
            workers=self.workers or None,
            connections=self.connections or None,
            warmup_s=parse_duration(self.warmup) if self.warmup else None,
            duration_s=parse_duration(self.duration) if self.duration else None,
        )


def parse_overrides(values: dict[str, str]) -> OverrideValues:
    """Raise ValueError naming the field for a bad value; empty means 'as in the file'."""
    ints: dict[str, int] = {}
    for name in ("workers", "connections"):
        text = values.get(name, "").strip()
        if not text:
            ints[name] = 0
            continue
        try:
            ints[name] = int(text)
        except ValueError:
            raise ValueError(f"{name}: must be a whole number, got {text!r}") from None
        if ints[name] < 1:
            raise ValueError(f"{name}: must be at least 1, got {ints[name]}")
    durations: dict[str, str] = {}
    for name in ("warmup", "duration"):
        text = values.get(name, "").strip()
        if text:
            try:
                durations[name] = format_duration(parse_duration(text))
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        else:
            durations[name] = ""
    return OverrideValues(
        ints["workers"], ints["connections"], durations["warmup"], durations["duration"]
    )


def error_text(exc: WorkloadError, text: str | None) -> Text:
    out = Text("✗ invalid workload\n\n", style="bold red")
    out.append(str(exc) + "\n", style="red")
    line = fmt.source_line(text, exc.line) if text is not None else None
    if line is not None and exc.line is not None:
        out.append(f"\n{exc.line:>5} │ ", style="dim")
        out.append(line)
    return out


class LaunchScreen(AppScreen):
    DEFAULT_CSS = """
    LaunchScreen #launch-body {
        height: 1fr;
    }
    LaunchScreen #launch-left {
        width: 44;
        padding: 0 1;
    }
    LaunchScreen #files {
        height: 1fr;
        border: round $primary 60%;
    }
    LaunchScreen #launch-right {
        width: 1fr;
        padding: 0 1;
    }
    LaunchScreen #summary {
        height: 1fr;
        border: round $primary 60%;
        padding: 0 1;
        overflow-y: auto;
    }
    LaunchScreen #overrides {
        height: auto;
    }
    LaunchScreen #overrides-label {
        padding: 1 1 0 1;
        color: $text-muted;
    }
    LaunchScreen #overrides Input {
        width: 1fr;
    }
    LaunchScreen #launch-actions {
        height: auto;
        margin-top: 1;
    }
    LaunchScreen #launch-status {
        width: 1fr;
        padding: 1 2;
    }
    LaunchScreen #launch-status.error {
        color: $text-error;
    }
    """
    BINDINGS = [
        Binding("ctrl+s", "start", "Start run"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, path: str = "") -> None:
        super().__init__()
        self.initial_path = path
        self.workload: Workload | None = None
        self.parsed_path = ""

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="launch-body"):
            with Vertical(id="launch-left"):
                yield OptionList(id="files")
                yield Input(placeholder="…or type a path and press Enter", id="path")
            with Vertical(id="launch-right"):
                yield Static("Choose a workload file.", id="summary")
                yield Static(
                    "overrides (leave empty to use the file's values)", id="overrides-label"
                )
                with Horizontal(id="overrides"):
                    for name, placeholder, kind in OVERRIDES:
                        yield Input(
                            placeholder=placeholder,
                            id=name,
                            type="integer" if kind == "integer" else "text",
                        )
                with Horizontal(id="launch-actions"):
                    yield Button("Start run", id="start", variant="primary")
                    yield Static("", id="launch-status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#files", OptionList).border_title = "workload files (examples/)"
        self.query_one("#summary", Static).border_title = "workload"
        for name, _, _ in OVERRIDES:
            box = self.query_one(f"#{name}", Input)
            box.border_title = name
        self._list_files()
        if self.initial_path:
            self.query_one("#path", Input).value = self.initial_path
            self.parse()
        self.query_one("#files", OptionList).focus()

    # -- inputs ---------------------------------------------------------------------------

    @property
    def path(self) -> str:
        return self.query_one("#path", Input).value.strip()

    def override_texts(self) -> dict[str, str]:
        return {name: self.query_one(f"#{name}", Input).value for name, _, _ in OVERRIDES}

    @work(exclusive=True, group="launch-files")
    async def _list_files(self) -> None:
        files = await asyncio.to_thread(list_examples)
        options = self.query_one("#files", OptionList)
        options.clear_options()
        options.add_options([Option(f, id=f) for f in files])
        if not files:
            options.add_option(Option("(no examples/*.toml here)", disabled=True))
        elif not self.path:
            options.highlighted = 0  # the first file is chosen (and previewed) until another is

    @on(OptionList.OptionSelected, "#files")
    @on(OptionList.OptionHighlighted, "#files")
    def _file_chosen(self, event: OptionList.OptionSelected | OptionList.OptionHighlighted) -> None:
        if event.option.id is None:
            return
        if isinstance(event, OptionList.OptionHighlighted) and not event.option_list.has_focus:
            return  # only a user moving through the list previews its files
        path_input = self.query_one("#path", Input)
        if path_input.value != event.option.id:
            path_input.value = event.option.id
            self.parse()

    @on(Input.Submitted, "#path")
    def _path_submitted(self) -> None:
        self.parse()

    @on(Input.Changed, "#workers, #connections, #warmup, #duration")
    def _override_changed(self) -> None:
        if self.path:
            self.parse()

    @on(Input.Submitted, "#workers, #connections, #warmup, #duration")
    def _override_submitted(self) -> None:
        self.action_start()

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.action_start()

    # -- parse -------------------------------------------------------------------------------

    def parse(self) -> None:
        self.workload = None
        self._parse(self.path, self.override_texts())

    @work(exclusive=True, group="launch-parse")
    async def _parse(self, path: str, overrides: dict[str, str]) -> None:
        summary = self.query_one("#summary", Static)
        if not path:
            summary.update("Choose a workload file.")
            return
        try:
            text = await asyncio.to_thread(read_text, path)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "file is not valid UTF-8"
            summary.update(Text(f"✗ {path}: cannot read file: {reason}", style="bold red"))
            return
        try:
            values = parse_overrides(overrides)
            workload = parse_toml(text, source=path, overrides=values.to_overrides())
        except WorkloadError as exc:
            summary.update(error_text(exc, text))
            return
        except ValueError as exc:
            summary.update(Text(f"✗ override {exc}", style="bold red"))
            return
        self.workload = workload
        self.parsed_path = path
        summary.update(Text("\n".join(fmt.workload_summary(workload))))

    # -- start -------------------------------------------------------------------------------

    def action_start(self) -> None:
        if not self.path:
            self.set_status("choose a workload file first", error=True)
            return
        self._start(self.path, self.override_texts())

    def set_status(self, text: str, *, error: bool = False) -> None:
        status = self.query_one("#launch-status", Static)
        status.update(text)
        status.set_class(error, "error")

    @work(exclusive=True, group="launch-start")
    async def _start(self, path: str, overrides: dict[str, str]) -> None:
        client = await self.snowload.wait_client()
        if client is None:
            self.set_status(self.snowload.connection_status, error=True)
            return
        try:
            text = await asyncio.to_thread(read_text, path)
            values = parse_overrides(overrides)
            parse_toml(text, source=path, overrides=values.to_overrides())
        except (OSError, UnicodeDecodeError) as exc:
            self.set_status(f"{path}: cannot read file: {exc}", error=True)
            return
        except ValueError as exc:  # WorkloadError is a ValueError
            self.set_status(str(exc), error=True)
            return
        request = run_pb2.StartRunRequest(
            workload_toml=text,
            source_name=path,
            workers=values.workers,
            connections=values.connections,
            warmup=values.warmup,
            duration=values.duration,
        )
        self.set_status(f"starting on {client.address}…")
        try:
            run = await client.start_run(request)
        except ControllerError as exc:
            self.set_status(str(exc), error=True)
            self.notify(str(exc), title="StartRun failed", severity="error")
            return
        self.notify(f"run {run.run_id} ({run.name}) started")
        self.snowload.open_live(run.run_id, replace=True)
