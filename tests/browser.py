"""Open an HTML file in Debian's headless Chromium and report what a reader would see.

The driver is Chromium's own DevTools protocol over ``--remote-debugging-pipe`` (file descriptors 3 and
4, NUL-terminated JSON messages): no Python package and no browser download beyond the system's
``chromium``. ``render`` loads the page, collects console errors and uncaught exceptions, takes a
full-page screenshot and, for every element with the figure marker class, the pixel spread of its
bounding box (of its drawing: the first svg, img or canvas inside it, else the element), so a test
can tell a drawn figure from a blank one.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars", "--mute-audio", "--remote-debugging-pipe")
VIEWPORT = (1280, 900)
BLANK_STD = 2.0  # grey levels: a figure region with less spread than this is blank


def chromium_path() -> str | None:
    """The system Chromium, or None where it is not installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


@dataclass
class Figure:
    """One marker element as rendered: its drawing's box in page pixels and the grey-level spread inside."""

    index: int
    box: tuple[float, float, float, float]
    pixel_std: float

    @property
    def blank(self) -> bool:
        return self.box[2] < 1 or self.box[3] < 1 or self.pixel_std < BLANK_STD


@dataclass
class Page:
    console_errors: list[str]
    figures: list[Figure]
    screenshot: bytes
    broken_images: int


class _Pipe:
    """A DevTools session over the browser's pipe: send a command, read messages until its reply."""

    def __init__(self, process: subprocess.Popen, write_fd: int, read_fd: int) -> None:
        self.process, self.write_fd, self.read = process, write_fd, os.fdopen(read_fd, "rb")
        self.next_id, self.buffer, self.events = 0, b"", []

    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self.read.fileno(), 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium closed the DevTools pipe (exit code {self.process.poll()})")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, session: str | None = None, timeout: float = 60.0, **params: Any) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        while True:
            event = self._message(deadline)
            if event.get("method") == method:
                return event
            self.events.append(event)


_BOXES = """JSON.stringify(Array.from(document.querySelectorAll(%s)).map(e => {
  const r = (e.querySelector("svg, img, canvas") || e).getBoundingClientRect();
  return [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height];
}))"""
_BROKEN_IMAGES = "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length"


def _errors(events: list[dict]) -> list[str]:
    out = []
    for e in events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            out.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            out.append(params["entry"].get("text", ""))
    return out


def _spread(png: bytes, box: tuple[float, float, float, float]) -> float:
    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)
    x, y, w, h = (int(round(v)) for v in box)
    region = image[max(y, 0):y + h, max(x, 0):x + w]
    return float(region.std()) if region.size else 0.0


def require_chromium() -> str:
    """The Chromium executable, or skip the calling test saying how to get one."""
    import pytest

    path = chromium_path()
    if path is None:
        pytest.skip("headless Chromium is not installed: `make browser` installs it with apt-get "
                    "(as root; Debian package `chromium`)")
    return path


def render(html_file: Path, marker: str = ".figure", timeout: float = 60.0) -> Page:
    """Load ``html_file`` in a fresh headless Chromium profile and return what it rendered."""
    executable = chromium_path()
    if executable is None:
        raise FileNotFoundError("chromium is not installed (apt-get install -y chromium)")
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()
    # Chromium's helper processes may still write to the profile as it is removed: leftovers are not an error.
    with tempfile.TemporaryDirectory(prefix="cas-chromium-", ignore_cleanup_errors=True) as profile, \
            open(Path(profile) / "stderr.log", "w+b") as log:
        def wire_fds() -> None:
            """Chromium reads commands on fd 3 and writes replies on fd 4; copy first, so neither
            end is overwritten when the pipe already sits on 3 or 4. Every other descriptor Python
            opened is close-on-exec, hence ``close_fds=False``."""
            commands, replies = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(commands, 3)
            os.dup2(replies, 4)
            os.set_inheritable(3, True)  # dup2 onto itself (a copy that landed on 3 or 4) keeps close-on-exec
            os.set_inheritable(4, True)

        process = subprocess.Popen([executable, *FLAGS, f"--user-data-dir={profile}",
                                    f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "about:blank"],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                   close_fds=False, preexec_fn=wire_fds)
        os.close(to_browser_r)
        os.close(from_browser_w)
        pipe = _Pipe(process, to_browser_w, from_browser_r)
        try:
            target = pipe.call("Target.createTarget", url="about:blank")["targetId"]
            session = pipe.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                pipe.call(f"{domain}.enable", session)
            pipe.call("Emulation.setDeviceMetricsOverride", session, width=VIEWPORT[0], height=VIEWPORT[1],
                      deviceScaleFactor=1, mobile=False)
            pipe.call("Page.navigate", session, url=Path(html_file).resolve().as_uri())
            pipe.wait_event("Page.loadEventFired", timeout)
            value = pipe.call("Runtime.evaluate", session, expression=_BOXES % json.dumps(marker),
                              returnByValue=True)["result"]["value"]
            boxes = [tuple(b) for b in json.loads(value)]
            broken = pipe.call("Runtime.evaluate", session, expression=_BROKEN_IMAGES,
                               returnByValue=True)["result"]["value"]
            shot = pipe.call("Page.captureScreenshot", session, timeout, format="png", captureBeyondViewport=True)
            png = base64.b64decode(shot["data"])
            figures = [Figure(i, box, _spread(png, box)) for i, box in enumerate(boxes)]
            pipe.call("Browser.close")
            return Page(_errors(pipe.events), figures, png, broken)
        except (OSError, RuntimeError, TimeoutError) as e:
            log.seek(0)
            tail = log.read().decode(errors="replace").splitlines()[-15:]
            raise RuntimeError(f"{e}; chromium (exit code {process.poll()}) last wrote:\n" + "\n".join(tail)) from e
        finally:
            os.close(to_browser_w)
            pipe.read.close()
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
