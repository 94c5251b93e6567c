"""Serve the Anjuka app on 127.0.0.1 for the integration tests (a real HTTP server).

Usage: ``python serve.py [PORT]``; port 0 (the default) picks a free one. The
port is printed on the first line of stdout once the socket listens. The
environment (``ANJUKA_DATABASE_URL``, ``ANJUKA_INSTANCE_PATH``) configures
the app exactly as it configures ``gunicorn 'anjuka:create_app()'``.
"""

from __future__ import annotations

import sys

from werkzeug.serving import make_server

from anjuka import create_app


def main() -> None:
    """Listen, print the port, serve until killed."""
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = make_server("127.0.0.1", port, create_app(), threaded=True)
    print(server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
