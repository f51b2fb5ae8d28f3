"""`python -m api`: serve the public API on the configured host and port.

`PAY_API_WORKERS` processes share the port (uvicorn's supervisor; 0, the default, means one per
CPU core; `stack.launcher` beside its embedded PostgreSQL asks for one per two cores): each has
its own event loop, connection pool, caches and group commit. With one worker the app runs in
this process. Each freezes its startup objects out of the garbage collector's sight
(`settle_gc`).
"""

import gc
import logging
import os

import uvicorn
from fastapi import FastAPI

from api.app import create_app
from config import Settings, get_settings
from config.logging import configure_logging


def worker_count(settings: Settings) -> int:
    """`PAY_API_WORKERS`, or one per CPU this process may run on (its affinity: a pinned
    container's cpuset, not the host's cores)."""
    if settings.api_workers:
        return settings.api_workers
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _logging(settings: Settings) -> None:
    """`configure_logging`, and uvicorn's access log off unless `PAY_API_ACCESS_LOG`.

    uvicorn switches its access logger off (`access_log=False`) before it loads the app; a
    worker's `configure_logging` would switch it back on (it makes uvicorn's loggers propagate
    to the root handler). Off, each connection sees a logger without handlers and skips the
    record entirely: at the wallet's rates the line per request cost ~5% of an API process's
    CPU (issue 21)."""
    configure_logging(settings)
    if not settings.api_access_log:
        access = logging.getLogger("uvicorn.access")
        access.handlers.clear()
        access.propagate = False


def settle_gc() -> None:
    """Move everything alive now (modules, classes, routes, the app: ~230,000 objects) out of
    the collector's sight, and collect the young generation less often.

    A request allocates and frees many small objects; with the default thresholds (700, 10, 10)
    the youngest generation is collected ~80 times a second at the wallet's rates and every
    ~2 seconds a full collection walks the whole heap, the startup objects included: measured
    in an API worker during `bench.wallet` (gc.callbacks), 12 full collections of up to 224 ms
    wall time each, the calls waiting on them the p99 tail (issue 21). Frozen objects are
    never collected (they live as long as the process anyway), so a full collection walks only
    what requests left behind."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


GC_THRESHOLDS = (7_000, 20, 20)


def worker_app() -> FastAPI:
    """The app of one worker process (uvicorn imports it by name in each)."""
    settings = get_settings()
    _logging(settings)
    app = create_app(settings)
    settle_gc()
    return app


def main() -> None:
    settings = get_settings()
    _logging(settings)
    workers = worker_count(settings)
    app: FastAPI | str = "api.__main__:worker_app"
    if workers == 1:
        app = create_app(settings)
        settle_gc()
    uvicorn.run(
        app,
        factory=workers > 1,
        workers=workers if workers > 1 else None,
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        access_log=settings.api_access_log,
        log_config=None,  # uvicorn's records go through configure_logging's JSON handler
        # The C parser and event loop (uvicorn's "auto" picks them too, but falls back silently).
        http="httptools",
        loop="uvloop",
        server_header=False,  # a header no client needs, on every response otherwise
    )


if __name__ == "__main__":
    main()
