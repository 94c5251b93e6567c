"""Helpers for the tests that drive Chromium through Playwright: signing in, following
links, and checking a page's language and accessibility."""

from __future__ import annotations

import re

#: The viewport of the officer's phone.
PHONE = {"width": 390, "height": 844}


def follow(page: object, selector: str) -> None:
    """Click the link or button at ``selector``, and wait until the page it leads to has loaded.

    A bare click does not wait for the page it leads to: a read right after it
    may find the old page, or the new one half parsed (a count of a chart's
    list's rows once read 0 so), and an assertion that holds on both pages
    passes for the wrong reason.
    """
    with page.expect_navigation():  # type: ignore[attr-defined]
        page.click(selector)  # type: ignore[attr-defined]


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
    follow(page, "form[action='/sign-in'] button[type=submit]")


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
