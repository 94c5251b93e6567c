"""``anjuka-cardsim``: a simulated Anju e-Card in a vpcd virtual reader."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from cardreader.sim.base import random_uid
from cardreader.sim.state import CARD_CLASSES, SimCard, card_from_state, load_state, save_state
from cardreader.sim.vpcd import DEFAULT_PORT, VpcdLink, serve
from cardreader.transport.base import APDU_TRACE

log = logging.getLogger("cardreader.sim")


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="anjuka-cardsim", description="Present a simulated card to a vpcd virtual reader."
    )
    parser.add_argument("--type", choices=sorted(CARD_CLASSES), required=True)
    parser.add_argument("--reader-port", type=int, default=DEFAULT_PORT, help="vpcd port")
    parser.add_argument("--state", type=Path, help="JSON file holding the card's memory")
    parser.add_argument("--uid", help="chip UID in hex (new cards; default random)")
    parser.add_argument("--transport-key", help="key of a blank card, hex (default: all FF)")
    parser.add_argument(
        "--tear-after",
        type=_tear_points,
        default=[],
        help="leave the field instead of answering the (N+1)th APDU; with --reinsert-after, "
        "a comma-separated list applies one N per insertion",
    )
    parser.add_argument(
        "--tear-write",
        type=_tear_write,
        help="W:K: let W writes (UPDATE BINARY) complete, store only the first K bytes of the"
        " next, and leave the field (an EEPROM tear inside a write; first insertion only)",
    )
    parser.add_argument(
        "--reinsert-after",
        type=float,
        help="after a tear, come back after this many seconds (default: exit)",
    )
    parser.add_argument("--clone-of", type=Path, help="copy another card's data, keep our UID")
    parser.add_argument("--apdu-trace", action="store_true", help="log APDUs (shows keys!)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def _tear_points(text: str) -> list[int]:
    try:
        points = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("expected N or N,N,...") from None
    if any(point < 0 for point in points):
        raise argparse.ArgumentTypeError("tear points are >= 0")
    return points


def _tear_write(text: str) -> tuple[int, int]:
    writes, sep, keep = text.partition(":")
    try:
        point = int(writes), int(keep)
    except ValueError:
        raise argparse.ArgumentTypeError("expected W:K") from None
    if not sep or min(point) < 0:
        raise argparse.ArgumentTypeError("expected W:K with W, K >= 0")
    return point


def make_card(args: argparse.Namespace) -> SimCard:
    """Load the card from --state, or make a new one; apply --clone-of."""
    try:
        uid = bytes.fromhex(args.uid) if args.uid else None
        transport_key = bytes.fromhex(args.transport_key) if args.transport_key else None
    except ValueError:
        raise SystemExit("--uid and --transport-key take hex") from None
    key_size = 16 if args.type == "cpu" else 6
    if transport_key is not None and len(transport_key) != key_size:
        raise SystemExit(f"a {args.type} transport key is {key_size} bytes")
    if uid is not None and not (len(uid) == 4 or (args.type == "cpu" and len(uid) in (7, 10))):
        raise SystemExit("--uid: 4 bytes (a CPU card may also have 7 or 10)")
    if args.state and args.state.exists():
        data = load_state(args.state)
        if data["type"] != args.type:
            raise SystemExit(f"{args.state} holds a {data['type']} card, not {args.type}")
        if uid is not None and bytes.fromhex(data["uid"]) != uid:
            raise SystemExit(f"{args.state} holds UID {data['uid']}, not {args.uid}")
        card = card_from_state(data)
    else:
        if transport_key is not None:
            card = CARD_CLASSES[args.type](uid, transport_key=transport_key)
        else:
            card = CARD_CLASSES[args.type](uid)
    if args.clone_of:
        source = load_state(args.clone_of)
        if source["type"] != args.type:
            raise SystemExit(f"{args.clone_of} holds a {source['type']} card")
        while uid is None and card.uid.hex() == source["uid"]:
            card.uid = random_uid(len(card.uid))
        card.load_memory(source)
    return card


def main(argv: Sequence[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT (or until torn, without --reinsert-after)."""
    args = build_parser().parse_args(argv)
    level = APDU_TRACE if args.apdu_trace else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    card = make_card(args)
    if args.state:
        state_path: Path = args.state
        card.on_change = lambda: save_state(card, state_path)
        save_state(card, state_path)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    tear_points = list(args.tear_after)
    if args.tear_write is not None:
        writes, keep = args.tear_write
        card.arm_tear(keep, writes=writes)
    log.info("simulated %s card, UID %s, vpcd port %d", args.type, card.uid.hex(), args.reader_port)
    delay = 0.1
    while not stop.is_set():
        try:
            link = VpcdLink(port=args.reader_port)
        except OSError:
            # vpcd is not listening (pcscd down or restarting): try again.
            stop.wait(delay)
            delay = min(delay * 2, 2.0)
            continue
        delay = 0.1
        log.info("card entered the field of the reader on port %d", args.reader_port)
        card.power_on()
        armed = card.tear_armed
        outcome = serve(card, link, stop, tear_points[0] if tear_points else None)
        log.info("card left the field (%s)", outcome)
        if outcome == "torn":
            if tear_points and not (armed and not card.tear_armed):
                tear_points.pop(0)  # the tear was by APDU count, not inside a write
            if args.reinsert_after is None:
                break
            stop.wait(args.reinsert_after)
        elif outcome == "disconnected":
            time.sleep(0.1)
    if args.state:
        save_state(card, args.state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
