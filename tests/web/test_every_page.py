"""Every page each role reaches, in both languages: in the page's language, no serious axe fault.

For each role the walk starts at the role's home after signing in, follows
the navigation (the header's, and each part's sections), then every other
link on those pages one level further
(same site, pages of the ``web`` blueprint, GET only: nothing is posted). A
page found under several addresses (a list's rows) is checked once per
endpoint. Pages added later are walked as soon as a navigation link leads to
them.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from browsing import serious_violations, sign_in, wrong_language
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from anjuka.cards.readers import create_reader
from anjuka.core.db import db

ROLES = ("admin", "supervisor", "manager", "officer", "auditor")
#: What each role must at least reach on this branch's pages (others add theirs).
REACHES = {
    "admin": {
        "web.admin",
        "web.admin_area",
        "web.admin_users",
        "web.admin_user",
        "web.admin_readers",
        "web.admin_keys",
        "web.audit_trail",
        "web.audit_verify",
        "web.audit_access_report",
        "web.password",
    },
    "auditor": {
        "web.audit_trail",
        "web.audit_verify",
        "web.audit_access_report",
        "web.password",
    },
}


@dataclass
class World:
    users: dict[str, dict]


@pytest.fixture
def world(create_area, create_estate, create_dwelling, create_user, arrive, client) -> World:
    """A small registry: two areas, an estate with residents, a desk reader, a user of each role."""
    create_area("3302", name="宁波市", max_persons_per_room=3)
    create_area("330203", parent_code="3302", name="海曙区")
    estate = create_estate("330203", name="月湖花园")
    dwellings = [create_dwelling("330203", estate_id=estate) for _ in range(2)]
    create_reader("月湖前台", estate_id=estate)
    db.session.commit()
    users = {
        "admin": create_user("admin"),
        "supervisor": create_user("supervisor", ["area:3302"]),
        "manager": create_user("manager", [f"estate:{estate}"]),
        "officer": create_user("officer", ["area:330203"]),
        "auditor": create_user("auditor"),
    }
    for dwelling in dwellings:
        assert arrive(users["manager"]["headers"], dwelling, name="李四").status_code == 201
    return World(users)


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
@pytest.mark.parametrize("role", ROLES)
def test_every_page_a_role_reaches_is_in_its_language_and_accessible(
    app, world, new_page, live_server, role, locale
):
    host = urlsplit(live_server).netloc
    adapter = app.url_map.bind(host)

    def endpoint_of(url: str) -> str | None:
        parts = urlsplit(url)
        if parts.netloc != host or parts.path.startswith("/api/"):
            return None
        try:
            endpoint, _args = adapter.match(parts.path, method="GET")
        except (NotFound, MethodNotAllowed, RequestRedirect):
            return None
        return endpoint if endpoint.startswith("web.") and endpoint != "web.static" else None

    page = new_page(locale=locale)
    sign_in(page, world.users[role])
    checked: dict[str, str] = {}
    problems: list[object] = []

    def links(selector: str) -> list[str]:
        # An SVG chart's links have no string ``href``: resolve the attribute instead.
        return page.eval_on_selector_all(
            selector,
            "as => as.map(a => new URL(a.getAttribute('href'), document.baseURI)"
            ".href.split('#')[0])",
        )

    def check(url: str) -> bool:
        """Check the page at ``url`` once per endpoint; whether it was visited now."""
        endpoint = endpoint_of(url)
        if endpoint is None or endpoint in checked:
            return False
        checked[endpoint] = url
        answer = page.goto(url)
        if answer is None or answer.status >= 400:
            problems.append((url, "status", answer and answer.status))
            return False
        if page.locator("html").get_attribute("lang") != locale:
            problems.append((url, "lang", page.locator("html").get_attribute("lang")))
        if words := wrong_language(page):
            problems.append((url, "words", words))
        if faults := serious_violations(page):
            problems.append((url, "axe", faults))
        return True

    # The navigation (the header's links and each part's sections) is followed to its end;
    # the other links of those pages one level.
    navigation, leaves = [page.url], []
    while navigation:
        if check(navigation.pop(0)):
            navigation += links("header a[href], nav a[href]")
            leaves += links("main a[href]")
    for url in leaves:
        check(url)
    assert problems == []
    assert REACHES.get(role, {"web.password"}) <= set(checked), sorted(checked)
