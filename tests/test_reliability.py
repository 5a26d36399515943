"""Determinism, interruptions (SIGKILL) and a feature cache shared by two workflows at once.

Every run here starts from scratch in its own folder and is compared, byte for byte,
with one uninterrupted reference run of the same config.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import SNAKEMAKE_ENV, cache_files, job_counts, run_snakemake, snakemake_command

from serflow.features import Descriptors
from serflow.features.cache import FeatureCache
from serflow.features.tables import read_metadata

N_CLIPS = 48
CONFIG = {
    "datasets": [{"name": "demo", "adapter": "demo", "n_train": 40, "n_test": 8, "seed": 3}],
    "extraction": {"shards": 4},
    "feature_tables": ["prosody", "all"],
    "models": {
        "forest": {"kind": "random_forest", "params": {"n_estimators": 30}},
        "logreg": {"kind": "logreg"},
    },
    "runs": [{"feature_sets": ["prosody", "all"], "models": ["forest", "logreg"]}],
    "evaluation": {"n_bootstrap": 200},
}
TABLES = ("manifest.parquet", "features/prosody.parquet", "features/all.parquet")


def _run(workdir: Path, cache: Path | None = None, *args, **kwargs):
    workdir.mkdir(parents=True, exist_ok=True)
    return run_snakemake(workdir, {**CONFIG, "cache_dir": str(cache or workdir / "cache")}, *args, **kwargs)


def _start(workdir: Path, cache: Path, log: Path) -> subprocess.Popen:
    """Start the workflow in its own process group (so that a kill takes its jobs too)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = snakemake_command(workdir, {**CONFIG, "cache_dir": str(cache)})
    with open(log, "w") as out:
        return subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=SNAKEMAKE_ENV, start_new_session=True
        )


def _kill_when(proc: subprocess.Popen, ready, what: str, timeout: float = 600.0) -> None:
    """SIGKILL the workflow and all its jobs as soon as ``ready()`` is true."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the workflow finished (exit {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _npy_count(cache: Path) -> int:
    return sum(1 for _ in cache.rglob("*.npy")) if cache.exists() else 0


def assert_same_results(first: Path, second: Path, tables_bytes: bool = True) -> None:
    """Same manifest and feature tables, metrics, predictions and submissions in two results/demo."""
    for table in TABLES:
        assert pq.read_table(first / table).equals(pq.read_table(second / table)), table
        if tables_bytes and table != "manifest.parquet":
            assert (first / table).read_bytes() == (second / table).read_bytes(), table
    compared = 0
    for path in sorted(first.rglob("*")):
        if path.suffix in (".json", ".csv") and "corpus" not in path.parts:
            assert path.read_bytes() == (second / path.relative_to(first)).read_bytes(), path
            compared += 1
    assert compared >= 4 + 4 + 4 + 3  # metrics, importances, submissions; rejected, best, summary
    for run in ("prosody-forest", "all-logreg"):
        a = pd.read_parquet(first / f"runs/{run}/predictions.parquet")
        assert a.equals(pd.read_parquet(second / f"runs/{run}/predictions.parquet")), run


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("reference")
    _run(workdir)
    return workdir / "results/demo"


def test_two_runs_from_scratch_give_identical_results(reference, tmp_path):
    """Same config and data, separate folders and caches: same tables, metrics and submissions."""
    _run(tmp_path / "second")
    assert_same_results(reference, tmp_path / "second/results/demo")


def test_sigkill_during_extraction_then_training_resumes_to_identical_results(reference, tmp_path):
    workdir, cache = tmp_path / "killed", tmp_path / "cache"
    # 1. Kill the whole workflow while extraction jobs are writing the cache.
    proc = _start(workdir, cache, tmp_path / "first.log")
    _kill_when(proc, lambda: _npy_count(cache) >= N_CLIPS // 4, "a quarter of the clips were extracted")
    killed_at = time.time()
    at_kill = cache_files(cache)
    assert N_CLIPS // 4 <= len(at_kill) < N_CLIPS, "kill came too late to interrupt extraction"
    assert not (workdir / "results/demo/features/all.parquet").exists()

    # 2. A killed Snakemake leaves its lock: `--unlock`, then the rerun, killed again when training starts.
    locked = _run(workdir, cache, check=False)
    assert locked.returncode != 0 and "cannot be locked" in locked.stderr + locked.stdout
    _run(workdir, cache, "--unlock")
    proc = _start(workdir, cache, tmp_path / "second.log")
    train_logs = workdir / "logs/demo/train"
    _kill_when(proc, lambda: train_logs.is_dir() and any(train_logs.iterdir()), "a training job started")
    second = (tmp_path / "second.log").read_text()
    assert "rule extract_features:" in second and "rule train:" in second
    after = cache_files(cache)
    assert len(after) == N_CLIPS
    assert {k: after[k] for k in at_kill} == at_kill  # finished entries were not recomputed
    # Shard jobs of the rerun computed exactly the clips missing at the kill.
    shards = sorted((workdir / "results/demo/features/descriptors").glob("*.parquet"))
    stats = {s.name: (s.stat().st_mtime > killed_at, read_metadata(s)["stats"]) for s in shards}
    assert len(stats) == 4 and all(
        st["cached"] + st["computed"] == len(pq.read_table(s)) for s, (_, st) in zip(shards, stats.values())
    )
    assert sum(st["computed"] for rerun, st in stats.values() if rerun) == N_CLIPS - len(at_kill)

    # 3. Unlock and rerun: it finishes with the reference's results, byte for byte.
    _run(workdir, cache, "--unlock")
    proc = _run(workdir, cache)
    counts = job_counts(proc)
    assert counts.get("extract_features", 0) == 0 and counts.get("train", 0) >= 1
    assert sorted(cache_files(cache).items()) == sorted(after.items())  # nothing computed again
    assert_same_results(reference, workdir / "results/demo")


def test_two_workflows_sharing_one_cache_at_once(reference, tmp_path):
    cache = tmp_path / "shared-cache"
    procs = [_start(tmp_path / name, cache, tmp_path / f"{name}.log") for name in ("a", "b")]
    for name, proc in zip(("a", "b"), procs):
        assert proc.wait(timeout=900) == 0, (tmp_path / f"{name}.log").read_text()[-4000:]
    entries = list(cache.rglob("*.npy"))
    assert len(entries) == N_CLIPS and not list(cache.rglob("*.tmp"))
    store = FeatureCache(cache, Descriptors())
    for path in entries:
        vec = store.get(path.stem)
        assert vec is not None and np.isfinite(vec).all(), path
    for name in ("a", "b"):
        assert_same_results(reference, tmp_path / name / "results/demo")
