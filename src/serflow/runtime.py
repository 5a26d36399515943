"""Process-level settings for workflow jobs."""

from __future__ import annotations

import logging
import os
import sys
import time

_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)


log = logging.getLogger("serflow")


class Progress:
    """Logs done / total, rate and time left at most every ``every_s`` seconds (and at the end)."""

    def __init__(self, total: int, what: str, every_s: float = 30.0, clock=time.monotonic):
        self.total, self.what, self.every_s, self.clock = total, what, every_s, clock
        self.start = self.last = clock()
        self.done = 0

    def step(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if now - self.last >= self.every_s or self.done == self.total:
            self.last = now
            elapsed = max(now - self.start, 1e-9)
            rate = self.done / elapsed
            left = (self.total - self.done) / rate if rate > 0 else float("inf")
            log.info(
                "%s: %d/%d done, %.1f/s, %.0f s elapsed, about %.0f s left",
                self.what,
                self.done,
                self.total,
                rate,
                elapsed,
                left,
            )


def limit_threads(n: int):
    """Bind BLAS, OpenMP and numba thread pools to ``n`` threads.

    Environment variables cover libraries loaded later; threadpoolctl covers
    those already loaded. More threads than the job owns ran ~10x slower here.
    Returns the threadpoolctl limiter (keep a reference while it matters).
    """
    n = max(1, int(n))
    for var in _THREAD_VARS:
        os.environ[var] = str(n)
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n)


def start_job(log_path, threads: int = 1) -> logging.Logger:
    """Common start of a workflow script: bind threads, log to ``log_path``."""
    limit_threads(threads)
    logging.basicConfig(
        filename=str(log_path),
        filemode="w",
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        force=True,
    )
    logging.captureWarnings(True)
    log = logging.getLogger("serflow")
    previous = sys.excepthook

    def log_failure(kind, value, tb):  # the job's log names the error, not only the terminal
        log.error("job failed: %s: %s", kind.__name__, value, exc_info=(kind, value, tb))
        previous(kind, value, tb)

    sys.excepthook = log_failure
    return log
