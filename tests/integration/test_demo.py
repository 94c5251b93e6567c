"""``./scripts/demo`` as a process manager runs it: up, serving, and stopped whole by SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import requests
from browsing import follow
from pcsc_fixtures import machine_lock
from served import REPO, free_port

from anjuka.persons.identity import resident_id_check_char


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc), at this moment."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigterm_stops_the_demo_and_every_child(pcscd, browser, tmp_path: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANJUKA_", "FLASK_"))}
    env.update(PORT=str(port), ANJUKA_INSTANCE_PATH=str(tmp_path / "instance"))
    log = tmp_path / "demo.log"
    with machine_lock(), log.open("w") as output:
        demo = subprocess.Popen(
            [str(REPO / "scripts" / "demo")],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 240
            while "Anjuka demo at" not in log.read_text():
                assert demo.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
            answer = requests.get(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=10)
            assert answer.status_code == 200
            assert f"Web interface: http://127.0.0.1:{port}/" in log.read_text()
            _issue_a_card_from_the_pages(browser, f"http://127.0.0.1:{port}", log.read_text())
            children = _descendants(demo.pid)
            assert len(children) >= 3, children  # gunicorn (and workers), the daemon, the card

            demo.send_signal(signal.SIGTERM)
            demo.wait(timeout=60)
            still = [pid for pid in children if _alive(pid)]
            assert still == [], (still, log.read_text()[-2000:])
        finally:
            if demo.poll() is None:
                os.killpg(demo.pid, signal.SIGKILL)
                demo.wait()


def _issue_a_card_from_the_pages(browser: Any, base: str, printed: str) -> None:
    """In Chromium: sign in with the printed credentials, register an arrival, issue its card."""
    password = re.search(r"^\s+manager\s+(\S+)$", printed, re.MULTILINE).group(1)  # type: ignore[union-attr]
    context = browser.new_context(base_url=base, locale="en")
    try:
        page = context.new_page()
        page.set_default_timeout(20000)
        page.goto("/")
        page.fill("#username", "manager")
        page.fill("#password", password)
        follow(page, "form[action='/sign-in'] button[type=submit]")
        assert page.url.endswith("/desk"), page.content()
        page.fill("#q", "南门街1号1幢")
        follow(page, "form[role=search] button[type=submit]")
        rows = page.locator("main table tbody tr")
        for index in range(rows.count()):
            occupants, capacity = re.findall(r"(\d+) of (\d+)", rows.nth(index).inner_text())[0]
            if int(occupants) < int(capacity):
                follow(page, f"main table tbody tr >> nth={index} >> a >> nth=0")
                break
        else:
            raise AssertionError("no demo dwelling with room")
        first17 = "33020319950101777"
        page.fill("#document_number", first17 + resident_id_check_char(first17))
        page.fill("#name", "演示")
        follow(page, "#register")
        residence = re.search(r"residence=(\d+)", page.url).group(1)  # type: ignore[union-attr]
        follow(page, f"form[action='/desk/residences/{residence}/card'] button")
        page.wait_for_selector("#card-status:has-text('active')", timeout=60000)
        assert "is written, checked and active" in page.inner_text("#job")
    finally:
        context.close()
