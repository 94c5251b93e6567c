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
from flask import Flask
from werkzeug.serving import make_server

PHONE = {"width": 390, "height": 844}


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


def release() -> None:
    """End the test's own transaction, so that the server's requests can write (SQLite)."""
    from anjuka.core.db import db

    db.session.commit()


def sign_in(page: object, user: dict) -> None:
    """Sign ``user`` (a ``create_user`` result) in through the form."""
    release()
    page.goto("/sign-in")  # type: ignore[attr-defined]
    page.fill("#username", user["username"])  # type: ignore[attr-defined]
    page.fill("#password", user["password"])  # type: ignore[attr-defined]
    page.click("form[action='/sign-in'] button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_load_state()  # type: ignore[attr-defined]


def serious_violations(page: object) -> list[dict]:
    """axe-core's serious and critical findings on the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


#: Latin words that may appear on a Chinese page: codes, and the language switch's own name.
ALLOWED_LATIN = {"AJ", "ID", "UID", "CPU", "MIFARE", "English"}


def untranslated(text: str) -> list[str]:
    """Words of three or more Latin letters (and no digit) left on a Chinese page."""
    words = re.findall(r"[A-Za-z][A-Za-z'’-]{2,}", text)
    return [w for w in words if w not in ALLOWED_LATIN]


#: The page's words, leaving out data (``translate="no"``) and text marked as another language.
_PAGE_WORDS = """() => {
  const body = document.body.cloneNode(true);
  const hidden = '[translate=no], [lang], script, noscript, style, template';
  body.querySelectorAll(hidden).forEach(e => e.remove());
  return document.title + '\\n' + body.textContent;
}"""


def wrong_language(page: object) -> list[str]:
    """What the page shows (scripts on) that is not in its language: Latin words on a
    Chinese page, Chinese characters on an English one."""
    text = page.evaluate(_PAGE_WORDS)  # type: ignore[attr-defined]
    if page.locator("html").get_attribute("lang") == "en":  # type: ignore[attr-defined]
        return re.findall(r"[\u3400-\u9fff]+", text)
    return untranslated(text)
