"""Persisting a simulated card to a JSON file, so one card can move between readers."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from cardreader.sim.cpu import SimCpuCard
from cardreader.sim.mifare import SimMifareCard

SimCard = SimCpuCard | SimMifareCard
CARD_CLASSES: dict[str, type[SimCpuCard] | type[SimMifareCard]] = {
    "cpu": SimCpuCard,
    "mifare1k": SimMifareCard,
}


def load_state(path: Path) -> dict[str, Any]:
    """Read a card state file."""
    with path.open(encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    if data.get("type") not in CARD_CLASSES:
        raise ValueError(f"{path}: not a simulated card state")
    return data


def save_state(card: SimCard, path: Path) -> None:
    """Write the card's state atomically (a crash never leaves half a file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(card.to_state(), handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def card_from_state(data: dict[str, Any]) -> SimCard:
    """Rebuild the card a state dict describes."""
    return CARD_CLASSES[data["type"]].from_state(data)
