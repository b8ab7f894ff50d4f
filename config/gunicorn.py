"""gunicorn settings for the web process: `gunicorn -c config/gunicorn.py config.wsgi`.

Every value can be overridden on the command line or with GUNICORN_CMD_ARGS.
"""

import gc
import os

bind = os.environ.get("WEB_BIND") or "0.0.0.0:8000"
workers = int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 2)
# gthread's event loop with requests run on its thread, and least-connections balance: see
# config/gunicorn_worker.py. WEB_CLIENT_TIMEOUT: seconds a client may stall mid-request.
worker_class = "config.gunicorn_worker.BalancedWorker"
keepalive = 30  # eMSPs and browsers reuse connections
accesslog = "-" if os.environ.get("WEB_ACCESS_LOG") else None


def post_worker_init(worker) -> None:
    """Move everything loaded at start-up (Django, DRF, the URL and model registries: some
    hundred thousand objects) out of the garbage collector's reach. Its full collections then
    scan only what requests leave behind, instead of pausing the worker for tens of
    milliseconds every few seconds under load."""
    gc.freeze()
