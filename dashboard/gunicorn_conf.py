"""gunicorn settings of the dashboard (dashboard/wsgi.py):

    CITYOPS_CONFIG=/etc/cityops/config.yaml \\
        gunicorn -c python:dashboard.gunicorn_conf dashboard.wsgi:application

Options on the command line win over these (``-w 3``, ``-b 127.0.0.1:8050``). The address
is ``dashboard.host:dashboard.port`` of the config file, so it is set in one place.

* ``gthread`` workers with 4 threads: a callback mostly waits for the store or Redis, and
  a slow browser holds a thread, not the whole worker. Processes give the CPU-bound part
  (pandas, plotly figures) both cores. ``WEB_CONCURRENCY`` sets the default count (2).
* never ``--preload``: each worker builds its own app, so no database or Redis socket and
  no refresh thread crosses a fork (dashboard/wsgi.py). :func:`post_fork` stops a worker
  that inherited an app built in the master.
* the access log names the worker (``pid=<1234>``) and the time taken (ms).
"""

from __future__ import annotations

import os
from typing import Any

from core.settings import load_settings
from dashboard.wsgi import built_before_fork, config_path

_settings = load_settings(config_path())

wsgi_app = "dashboard.wsgi:application"
bind = [f"{_settings.dashboard.host}:{_settings.dashboard.port}"]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = 4
timeout = 60  # a worker silent this long (stuck) is killed and replaced
graceful_timeout = 30
keepalive = 5  # behind nginx on the same host
preload_app = False
proc_name = "cityops-dashboard"
accesslog = "-"
errorlog = "-"
control_socket_disable = True  # gunicorn's control socket (in $HOME): not used here
access_log_format = '%(h)s %(t)s "%(r)s" %(s)s %(b)s "%(a)s" pid=%(p)s %(M)sms'
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"  # the heartbeat file: not on a disk that may stall


def post_fork(server: Any, worker: Any) -> None:
    """Refuse to serve with an app built before the fork (``--preload``): its sockets and
    threads belong to the master. The worker fails to boot and gunicorn stops, saying why."""
    parent = built_before_fork()
    if parent is not None:
        raise RuntimeError(
            f"dashboard.wsgi: the app was built in process {parent} before the fork; "
            "run gunicorn without --preload (preload_app = False)"
        )
