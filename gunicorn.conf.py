"""gunicorn settings for Anjuka (production: put a TLS proxy in front)."""

import multiprocessing
import os

bind = os.environ.get("ANJUKA_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("ANJUKA_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("ANJUKA_THREADS", 4))
# Desk daemons long-poll for up to 30 s.
timeout = 60
graceful_timeout = 30
accesslog = "-"
forwarded_allow_ips = os.environ.get("ANJUKA_FORWARDED_ALLOW_IPS", "127.0.0.1")
# Load the app before forking so the keys file is created once.
preload_app = True
