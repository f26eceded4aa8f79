"""``snowload tui --serve``: the TUI served to web browsers by textual-serve, behind the
controller's exposure rule (loopback by default, a token beyond it)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import psutil

from controller.server import Controller
from snowload import exposure

TOKEN = "s3cret-serve-token"
ANSI = re.compile(r"\x1b\[[0-9;?$]*[A-Za-z]|\x1b\][^\x07]*\x07")
"""Terminal escapes: what is left is the screen's text."""


def start_serving(*args: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "snowload.cli", "tui", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "serving on " in line:
            return proc, line.split("serving on ", 1)[1].split()[0]
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("snowload tui --serve did not say where it serves")


async def open_tab(
    browser: aiohttp.ClientSession, ws_url: str, controller: str
) -> aiohttp.ClientWebSocketResponse:
    """A tab's websocket, once its TUI shows the Runs screen (its header names the
    controller; its footer the screen's bindings)."""
    ws = await browser.ws_connect(ws_url + "?width=120&height=36")
    seen = ""
    deadline = time.monotonic() + 30
    while not (controller in seen and "Open run" in seen):
        left = deadline - time.monotonic()
        assert left > 0, f"no Runs screen in 30 s: {seen[-500:]!r}"
        message = await ws.receive(timeout=left)
        if message.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
            raise AssertionError(f"the websocket ended: {message!r} {seen[-500:]!r}")
        data = message.data
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        seen += ANSI.sub("", text)
    return ws


async def test_the_tui_is_served_to_a_browser_with_a_token(
    controller: Controller, tmp_path: Path
) -> None:
    env = dict(os.environ, SNOWLOAD_HOME=str(tmp_path / "home"))
    proc, url = start_serving(
        "--serve",
        "127.0.0.1:0",
        "--serve-token",
        TOKEN,
        "--controller",
        controller.address,
        env=env,
    )
    try:
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0/")
        async with aiohttp.ClientSession() as anonymous:
            for path in ("/", "/?token=wrong", "/static/js/textual.js", "/ws"):
                async with anonymous.get(url.rstrip("/") + path) as response:
                    assert response.status == 401, path
                    assert "missing or invalid token" in await response.text()
        jar = aiohttp.CookieJar(unsafe=True)  # (cookies for an IP address)
        async with aiohttp.ClientSession(cookie_jar=jar) as browser:
            # the token once: a cookie, and the address bar without it
            async with browser.get(f"{url}?token={TOKEN}&fontsize=14") as response:
                assert response.status == 200
                assert response.url.query.get("token") is None
                assert response.url.query.get("fontsize") == "14"
                page = await response.text()
            ws_url = url.replace("http://", "ws://") + "ws"
            assert ws_url in page and "textual.js" in page
            async with browser.get(url + "static/js/textual.js") as response:
                assert response.status == 200
            # behind a TLS proxy the page's websocket is a secure one
            async with browser.get(url, headers={"X-Forwarded-Proto": "https"}) as response:
                assert ws_url.replace("ws://", "wss://") in await response.text()
            # a page of another site cannot drive it, even from a browser with the cookie
            async with browser.get(
                ws_url.replace("ws://", "http://"), headers={"Origin": "http://evil.example"}
            ) as response:
                assert response.status == 403
            # a tab: its own TUI process, attached to the controller, drawing the Runs screen
            tab = await open_tab(browser, ws_url, controller.address)
            async with aiohttp.ClientSession() as bearer:
                headers = {"Authorization": f"Bearer {TOKEN}"}
                async with bearer.get(url, headers=headers) as response:
                    assert response.status == 200
            # a second tab; the first one closed by its browser; SIGTERM at once: the open
            # tab is closed, every tab's TUI stopped, exit 0 and nothing else said
            other = await open_tab(browser, ws_url, controller.address)
            tabs = psutil.Process(proc.pid).children(recursive=True)
            assert len(tabs) >= 2, tabs
            await tab.close()
            proc.send_signal(signal.SIGTERM)
            stopping = time.monotonic()
            while not other.closed:
                await other.receive(timeout=20)
        assert await asyncio.to_thread(proc.wait, 20) == 0
        assert time.monotonic() - stopping < 15  # (tabs get QUIT_S = 5 s to quit)
        assert proc.stderr is not None
        rest = proc.stderr.read()
        assert "Traceback" not in rest and "Exception" not in rest, rest
        _, alive = psutil.wait_procs(tabs, timeout=5)
        assert alive == [], alive
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_beyond_loopback_a_token_is_required_as_by_the_controller(tmp_path: Path) -> None:
    env = dict(os.environ, SNOWLOAD_HOME=str(tmp_path / "home"))
    env.pop("SNOWLOAD_SERVE_TOKEN", None)
    env.pop("SNOWLOAD_TOKEN", None)
    for command, flag, env_name in (
        (["tui", "--serve", "0.0.0.0:0"], "--serve-token", "SNOWLOAD_SERVE_TOKEN"),
        (["controller", "--listen", "0.0.0.0:0"], "--token", "SNOWLOAD_TOKEN"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "snowload.cli", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr == (
            "error: refusing to listen on 0.0.0.0:0 without a token: anyone who reaches it "
            f"could start load against your databases. Set {flag} (or {env_name}), "
            "or pass --insecure if the network is trusted\n"
        )
    # the rule itself: loopback open; beyond it a token or --insecure
    for listen in ("127.0.0.1:80", "localhost:80", "[::1]:80", "127.9.9.9:80"):
        assert exposure.refusal(listen, token="", insecure=False, flag="-", env="-") == ""
    for listen in ("0.0.0.0:80", "[::]:80", "10.1.2.3:80", "example.com:80", ":80"):
        assert exposure.refusal(listen, token="", insecure=False, flag="-", env="-") != ""
        assert exposure.refusal(listen, token="t", insecure=False, flag="-", env="-") == ""
        assert exposure.refusal(listen, token="", insecure=True, flag="-", env="-") == ""
