"""The pages in a real browser: Debian's headless Chromium driven by Playwright.

Each test serves the test app on a free port from a thread of its own (the
same app and database as the factories use), opens a fresh browser context,
and, when ``ANJUKA_SCREENSHOTS`` names a folder, saves its screenshots there.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from browsing import release
from flask import Flask
from werkzeug.serving import make_server


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The test app over HTTP on 127.0.0.1; its base URL."""
    release()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@dataclass
class Shots:
    """Screenshots of one test, into ``ANJUKA_SCREENSHOTS`` when it is set."""

    folder: Path | None
    prefix: str

    def __call__(self, page: object, name: str) -> None:
        if self.folder is not None:
            page.screenshot(path=str(self.folder / f"{self.prefix}-{name}.png"), full_page=True)  # type: ignore[attr-defined]


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Shots:
    folder = os.environ.get("ANJUKA_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
    prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    return Shots(Path(folder) if folder else None, prefix)


@pytest.fixture
def new_page(browser: object, live_server: str) -> Iterator[Callable[..., object]]:
    """Factory: ``new_page(locale="zh-CN", viewport=None)`` -> a page of a fresh context."""
    contexts = []

    def make(locale: str = "zh-CN", viewport: dict | None = None) -> object:
        release()
        context = browser.new_context(  # type: ignore[attr-defined]
            base_url=live_server, locale=locale, viewport=viewport or {"width": 1280, "height": 900}
        )
        context.set_default_timeout(15000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()
