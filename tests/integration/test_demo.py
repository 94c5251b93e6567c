"""``./scripts/demo`` as a process manager runs it: up, serving, and stopped whole by SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import requests
from pcsc_fixtures import machine_lock
from served import REPO, free_port


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


def test_sigterm_stops_the_demo_and_every_child(pcscd, tmp_path: Path):
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
