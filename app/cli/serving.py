"""`serve`: the API (and SageMaker's /ping, /invocations) under uvicorn, in one process or in
WORKERS processes that each build their own app."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from app.cli.exit_codes import EXIT_OK
from app.cli.sagemaker import sagemaker_settings
from app.core.logs import setup_logging
from app.core.settings import Settings, get_settings, proxy_networks


def serve_command(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from app.api.main import create_app

    workers = args.workers or settings.workers
    options = server_options(settings, args.host, args.port)
    if workers > 1:  # each worker process builds its own app: see worker_app
        metrics_directory()
        uvicorn.run("app.cli.serving:worker_app", factory=True, workers=workers, **options)
    else:
        uvicorn.run(create_app(settings), **options)
    return EXIT_OK


def worker_app() -> Any:
    """The app of one worker process of `serve` with WORKERS > 1. Workers are fresh
    interpreters: they resolve the settings as the parent did (SageMaker's contract included,
    so the models come from /opt/ml/model there) and set up the same logging."""
    from app.api.main import create_app

    settings = sagemaker_settings(get_settings(), "serve")
    setup_logging(settings.log_level)
    return create_app(settings)


def metrics_directory() -> Path:
    """The directory the workers write their metrics to (PROMETHEUS_MULTIPROC_DIR, inherited
    by the worker processes): the one given, emptied of a previous run's files, or a new one."""
    from app.api.metrics import MULTIPROC_DIR

    if given := os.environ.get(MULTIPROC_DIR):
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    else:
        directory = Path(tempfile.mkdtemp(prefix="ssp-metrics-"))
        os.environ[MULTIPROC_DIR] = str(directory)
    return directory


def server_options(settings: Settings, host: str | None, port: int | None) -> dict[str, Any]:
    """uvicorn's options for `serve`."""
    proxies = proxy_networks(settings.forwarded_allow_ips)
    return {
        "host": host or settings.host,
        "port": port or settings.port,
        "log_config": None,
        "loop": "uvloop",
        "http": "httptools",
        "timeout_keep_alive": settings.keep_alive_seconds,
        # X-Forwarded-For is believed from the configured proxies only (uvicorn's own default
        # would trust 127.0.0.1, so anything local could pick its address); none by default.
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies,
    }
