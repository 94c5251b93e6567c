"""The property desk in a real browser: arrivals until full, a card through the simulator,
scope by URL, and every desk page in both languages (translated, no serious axe finding).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from browsing import follow, release, serious_violations, sign_in, untranslated

# The PC/SC harness of the integration tests: pcscd, vpcd and the simulated card.
from pcsc_fixtures import READERS, cardsim, pcscd  # noqa: F401
from playwright.sync_api import expect

from anjuka.cards.models import Card
from anjuka.cards.readers import create_reader
from anjuka.core.db import db
from anjuka.residences.models import Residence

DAEMON = str(Path(sys.executable).with_name("anjuka-cardreader"))


@pytest.fixture
def desk(create_area, create_estate, create_dwelling, create_user):
    """A community with one estate of the manager's and one of another desk's."""

    def make(usable: float = 10, rooms: int = 1) -> dict:
        create_area("HS", name="海曙", min_area_per_person_m2=5, max_persons_per_room=2)
        estate = create_estate("HS", "阳光小区")
        other = create_estate("HS", "江景小区")
        dwelling = create_dwelling(
            "HS", usable, rooms, estate_id=estate, address="阳光小区1幢101室"
        )
        far = create_dwelling("HS", estate_id=other, address="江景小区2幢202室")
        manager = create_user("manager", scopes=[f"estate:{estate}"])
        return {"estate": estate, "dwelling": dwelling, "far": far, "manager": manager}

    return make


def _register(page, number: str, name: str) -> None:
    page.fill("#document_number", number)
    page.fill("#name", name)
    follow(page, "#register")


def test_a_manager_registers_arrivals_until_the_dwelling_is_full(
    desk, new_page, shot, new_id_number
):
    made = desk(usable=10, rooms=1)  # 10 m² at 5 m² each, one room of 2: room for 2
    page = new_page()
    sign_in(page, made["manager"])
    assert page.url.endswith("/desk")
    page.fill("#q", "阳光")
    follow(page, "form[role=search] button[type=submit]")
    shot(page, "found")
    # Loaded, the page's script checks what is typed; the checks below wait for its answers.
    follow(page, "text=阳光小区1幢101室")
    assert "0 / 2 人" in page.inner_text(".big")
    id_check = page.locator("#id-check")
    # The ID number is checked as it is typed: a wrong check character, then the right one.
    number = new_id_number()
    wrong = number[:17] + ("1" if number[17] != "1" else "2")
    page.fill("#document_number", wrong)
    expect(id_check).to_contain_text(f"校验码应为 {number[17]}")
    page.fill("#document_number", number)
    sex = "男" if int(number[16]) % 2 else "女"
    expect(id_check).to_have_text(f"校验码正确：出生日期 1990-05-17，{sex}。")
    page.wait_for_selector("#lookup-result:has-text('新登记')")
    # Full-width digits from a Chinese input method are read as the server reads them.
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in number)
    page.fill("#document_number", wrong)
    expect(id_check).to_contain_text("校验码应为")
    page.fill("#document_number", full_width)
    expect(id_check).to_have_text(f"校验码正确：出生日期 1990-05-17，{sex}。")
    shot(page, "checked")
    page.fill("#name", "王小明")
    follow(page, "#register")
    assert "王** 已登记入住" in page.inner_text("[role=status]")
    _register(page, new_id_number(), "李四")
    assert "2 / 2 人" in page.inner_text(".big")
    rows = page.locator("#residents tbody tr")
    assert rows.count() == 2
    assert "李*" in rows.nth(1).inner_text()
    assert number not in page.content()  # the document number stays masked
    assert f"{number[:4]}**********{number[-4:]}" in rows.nth(0).inner_text()
    _register(page, new_id_number(), "张三")
    refusal = page.inner_text("#refusal")
    assert refusal.startswith("该房屋已满：现住2人，最多可住2人。")
    assert "使用面积10.00平方米，按每人5.00平方米可住2人" in refusal
    assert "1间房，按每间2人可住2人" in refusal
    shot(page, "refused")
    # The refused arrival wrote nothing; the form keeps what was typed.
    assert page.input_value("#name") == "张三"
    release()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Residence)) == 2


def test_another_estates_pages_and_the_admin_pages_are_out_of_reach_by_url(
    desk, new_page, shot, arrive, create_user
):
    made = desk()
    supervisor = create_user("supervisor", scopes=["area:HS"])
    residence = arrive(supervisor["headers"], made["far"]).json["id"]
    page = new_page()
    sign_in(page, made["manager"])
    for path in (f"/desk/dwellings/{made['far']}", f"/desk/residences/{residence}"):
        response = page.goto(path)
        assert response.status == 404
        assert "您的权限范围内没有" in page.inner_text("main")
    shot(page, "not-found")
    page.goto("/desk?q=江景")
    assert page.locator("main table").count() == 0
    assert "您管理的房屋中没有符合的" in page.inner_text("main")
    for path in ("/admin", "/api/v1/readers", "/api/v1/users"):
        assert page.goto(path).status in (403, 404)
    assert page.goto("/api/v1/readers").status == 403


def _desk_pages(page, made: dict, new_id_number) -> list[tuple[str, str]]:
    """Walk to every desk page, returning (name, url) of each."""
    pages = [("search", "/desk?q=阳光")]
    page.goto(f"/desk/dwellings/{made['dwelling']}")
    _register(page, new_id_number(), "王小明")
    pages.append(("dwelling", page.url))
    follow(page, "#residents button.issue")
    pages.append(("card", page.url))
    release()
    residence = db.session.scalar(sa.select(Residence.id))
    release()  # the server's requests write (SQLite): no read left open here
    pages.append(("residence", f"/desk/residences/{residence}"))
    return pages


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_the_desk_pages_are_translated_and_accessible(desk, new_page, shot, new_id_number, locale):
    made = desk(usable=10, rooms=1)
    reader, _token = create_reader("服务台一号", estate_id=made["estate"])
    db.session.commit()
    page = new_page(locale=locale)
    sign_in(page, made["manager"])
    for name, url in _desk_pages(page, made, new_id_number):
        page.goto(url)
        assert page.locator("html").get_attribute("lang") == locale
        if locale == "zh-CN":
            text = page.title() + " " + page.inner_text("main")
            assert untranslated(text) == [], (name, untranslated(text))
        assert serious_violations(page) == [], name
        shot(page, name)
    # A refusal and a look-up answer are pages too.
    page.goto(f"/desk/dwellings/{made['dwelling']}")
    _register(page, new_id_number(), "李四")
    _register(page, new_id_number(), "张三")
    assert page.locator("#refusal").count() == 1
    if locale == "zh-CN":
        assert untranslated(page.inner_text("main")) == []
    assert serious_violations(page) == []
    shot(page, "refusal")


@pytest.mark.pcsc
def test_a_card_is_issued_through_the_simulator_then_departure_and_return(
    desk,
    new_page,
    shot,
    new_id_number,
    cardsim,  # noqa: F811 (the fixture imported above)
    live_server,
    tmp_path,
):
    made = desk(usable=20, rooms=2)
    reader, token = create_reader("服务台一号", estate_id=made["estate"])
    db.session.commit()
    cardsim("cpu", port=35963, state=tmp_path / "card.json")
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [
                DAEMON,
                "--server",
                live_server,
                "--reader",
                READERS[35963],
                "--journal",
                str(tmp_path / "journal.json"),
                "--card-timeout",
                "30",
                "--poll-wait",
                "2",
                "--backoff-max",
                "1",
            ],
            env={**os.environ, "ANJUKA_READER_TOKEN": token},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        page = new_page()
        sign_in(page, made["manager"])
        page.goto(f"/desk/dwellings/{made['dwelling']}")
        # The common path: one form, then one button for the card.
        _register(page, new_id_number(), "王小明")
        follow(page, "#residents button.issue")
        shot(page, "writing")
        page.wait_for_selector("#card-status:has-text('已启用')", timeout=60000)
        assert "已写入、核验并启用" in page.inner_text("#job")
        shot(page, "active")
        release()
        card = db.session.scalar(sa.select(Card))
        assert (card.status, card.uid is not None) == ("active", True)
        card_no, residence_id = card.card_no, card.residence_id
        release()  # no read left open while the server writes (SQLite)
        # Departure with the card handed back: revoked at once, then erased on the reader.
        follow(page, f"a[href='/desk/residences/{residence_id}']")
        page.check("#card_returned")
        follow(page, "#departure button[type=submit]")
        assert page.url.endswith(f"/desk/cards/{card_no}")
        page.wait_for_selector("#card-status:has-text('已交回')", timeout=60000)
        assert "已擦除" in page.inner_text("#job")
        shot(page, "returned")
        release()
        db.session.expire_all()
        card = db.session.scalar(sa.select(Card))
        assert (card.status, card.revocation_reason) == ("returned", "departed")
        assert db.session.scalar(sa.select(Residence.departed_on)) is not None
        db.session.commit()
    finally:
        daemon.terminate()
        try:
            daemon.wait(10)
        except subprocess.TimeoutExpired:
            daemon.kill()
    assert "Traceback" not in log.read_text(errors="replace")
