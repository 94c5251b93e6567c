"""``anjuka-cardreader``: the desk daemon's command line."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from cardreader.client import JobClient
from cardreader.daemon import Daemon, DaemonConfig
from cardreader.transport.base import APDU_TRACE


def default_journal() -> Path:
    """Per-user state directory (XDG), where the journal lives."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "anjuka-cardreader" / "journal.json"


def load_holder(journal: Path) -> str:
    """This daemon's stable holder id, kept beside the journal (created once)."""
    path = journal.parent / "holder"
    try:
        holder = path.read_text(encoding="utf-8").strip()
        if holder:
            return holder
    except FileNotFoundError:
        pass
    holder = f"{socket.gethostname()[:24]}-{uuid.uuid4().hex[:16]}"
    holder = "".join(c if c.isalnum() or c in "_.:-" else "-" for c in holder)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(holder + "\n", encoding="utf-8")
    return holder


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="anjuka-cardreader", description="Run card jobs from the Anjuka server."
    )
    parser.add_argument(
        "--server", required=True, help="server base URL, e.g. https://anjuka.example"
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("ANJUKA_READER_TOKEN"),
        help="the reader's token (or ANJUKA_READER_TOKEN)",
    )
    parser.add_argument("--reader", help="PC/SC reader name or name prefix (default: first)")
    parser.add_argument("--reader-id", help="reader id (default: asked from GET /readers/me)")
    parser.add_argument("--journal", type=Path, default=None, help="journal file")
    parser.add_argument(
        "--card-timeout", type=float, default=60.0, help="seconds to wait for a card"
    )
    parser.add_argument("--backoff-max", type=float, default=60.0, help="longest retry delay")
    parser.add_argument("--poll-wait", type=int, default=25, help="long-poll seconds (max 30)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--apdu-trace", action="store_true", help="log APDUs (shows keys!)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the daemon until SIGTERM/SIGINT (``fetch``, ``verify``, ``upload``: patrol commands)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in ("fetch", "verify", "upload"):
        from cardreader.patrol import main as patrol_main  # the patrol laptop (offline checks)

        return patrol_main(argv)
    args = build_parser().parse_args(argv)
    if not args.token:
        print("anjuka-cardreader: --token or ANJUKA_READER_TOKEN is required", file=sys.stderr)
        return 2
    level = APDU_TRACE if args.apdu_trace else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    from cardreader.transport.pcsc import PcscReader

    journal = args.journal or default_journal()
    config = DaemonConfig(
        journal_path=journal,
        poll_wait=max(1, min(args.poll_wait, 30)),
        card_timeout=args.card_timeout,
        backoff_max=args.backoff_max,
    )
    client = JobClient(args.server, args.token, args.reader_id, holder=load_holder(journal))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            # A second signal means now: the journal lets the next start resume.
            raise SystemExit(1)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return Daemon(config, client, PcscReader(args.reader), stop).run()


if __name__ == "__main__":
    sys.exit(main())
