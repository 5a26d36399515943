"""Process-level settings for workflow jobs."""

from __future__ import annotations

import logging
import os

_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMBA_NUM_THREADS",
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
    return logging.getLogger("serflow")
