"""Languages: Simplified Chinese by default, English by choice or by the browser.

The choice is remembered: for a signed-in user on their account
(``users.locale``), before sign-in in the session cookie. Otherwise the
browser's ``Accept-Language`` decides between the two.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, g, request, session
from flask_babel import Babel, refresh

#: The message catalogs (``.po`` in the repository, ``.mo`` compiled by the setup step).
TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
#: The locales the pages are written in, the default first.
LOCALES = ("zh_Hans_CN", "en")
DEFAULT_LOCALE = LOCALES[0]
#: What ``<html lang>`` says for each.
HTML_LANG = {"zh_Hans_CN": "zh-CN", "en": "en"}
#: What a language is called in itself, for the switch.
NAMES = {"zh_Hans_CN": "中文", "en": "English"}
_ACCEPT = {"zh": "zh_Hans_CN", "zh-CN": "zh_Hans_CN", "zh-Hans": "zh_Hans_CN", "en": "en"}


def select_locale() -> str:
    """The locale of this request (see the module's docstring)."""
    user = getattr(g.get("identity"), "subject", None)
    chosen = getattr(user, "locale", None) or session.get("locale")
    if chosen in LOCALES:
        return str(chosen)
    best = request.accept_languages.best_match(list(_ACCEPT))
    return _ACCEPT.get(best or "", DEFAULT_LOCALE)


def html_lang() -> str:
    """The ``lang`` attribute of this request's pages."""
    return HTML_LANG[select_locale()]


def init_app(app: Flask) -> None:
    """Bind Flask-Babel: catalogs in ``anjuka/translations`` (compiled by the setup step)."""
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LOCALE)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    Babel(app, locale_selector=select_locale)
    # Flask-Babel keeps the locale on the app context, which a test client (or a
    # CLI command) reuses across requests: choose afresh for every request.
    app.before_request(refresh)
