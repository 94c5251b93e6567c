"""Every string of the pages is translated: the catalog holds each one, with its Chinese."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "anjuka" / "translations" / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"


def test_every_string_in_the_code_and_templates_has_its_translation(tmp_path: Path):
    pot = tmp_path / "messages.pot"
    pybabel = str(Path(sys.executable).with_name("pybabel"))
    subprocess.run(
        [pybabel, "-q", "extract", "-F", "babel.cfg", "-k", "l_", "-o", str(pot), "anjuka"],
        cwd=REPO,
        check=True,
    )
    wanted = {m.id for m in read_po(io.BytesIO(pot.read_bytes())) if m.id}
    catalog = {m.id: m.string for m in read_po(io.BytesIO(CATALOG.read_bytes())) if m.id}
    assert wanted - set(catalog) == set(), "run ./scripts/translations and translate"
    assert [m for m in wanted if not catalog[m]] == []
    # The placeholders of each sentence survive its translation.
    for message in wanted:
        source, target = str(message), str(catalog[message])
        assert sorted(_fields(source)) == sorted(_fields(target)), message


def _fields(text: str) -> list[str]:
    import re

    return re.findall(r"%\((\w+)\)s", text)
