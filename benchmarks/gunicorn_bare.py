"""The shipped ``gunicorn.conf.py``'s settings, for the bare reference app (benchmarks/bare.py).

Workers, threads, timeouts, preloading and logging are read from the
shipped file, so both sides of a ratio run on the same gunicorn settings;
the shipped file's hooks (the registry's database pool after a fork, the
webhook worker, the metrics directory) belong to Anjuka and are left out.
"""

import os
import runpy
import shutil
from pathlib import Path

_shipped = runpy.run_path(str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py"))
if _shipped["_own_metrics_dir"]:
    shutil.rmtree(os.environ.pop("PROMETHEUS_MULTIPROC_DIR"), ignore_errors=True)

bind = _shipped["bind"]
workers = _shipped["workers"]
threads = _shipped["threads"]
timeout = _shipped["timeout"]
graceful_timeout = _shipped["graceful_timeout"]
limit_request_line = _shipped["limit_request_line"]
logconfig_dict = _shipped["logconfig_dict"]
forwarded_allow_ips = _shipped["forwarded_allow_ips"]
preload_app = _shipped["preload_app"]
