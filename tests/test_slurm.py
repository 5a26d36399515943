"""The workflow on a real single-node SLURM cluster (started by tests/slurm_cluster.py)."""

import subprocess
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO, SNAKEMAKE, cache_files, run_snakemake
from slurm_cluster import ClusterUnavailable, start_cluster

from serflow.features.tables import read_metadata

RUNS = [{"feature_sets": ["prosody"], "models": ["logreg", "majority"]}]


def demo_config(cache_dir, n_train=40, seed=3, shards=2):
    return {
        "datasets": [{"name": "demo", "adapter": "demo", "n_train": n_train, "n_test": 8, "seed": seed}],
        "cache_dir": str(cache_dir),
        "feature_tables": ["prosody"],
        "models": {"logreg": {"kind": "logreg"}, "majority": {"kind": "majority"}},
        "runs": RUNS,
        "extraction": {"shards": shards},
        "evaluation": {"n_bootstrap": 100},
    }


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    try:
        cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    except ClusterUnavailable as exc:
        pytest.skip(f"no SLURM cluster: {exc.reason}")
    with cluster:
        yield cluster


def slurm_snakemake(cluster, workdir, config, *args, timeout=900):
    """Run the workflow through profiles/slurm, pointed at the test cluster; return the process."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir)]
    cmd += [
        "--workflow-profile",
        str(REPO / "profiles" / "slurm"),
        "--configfile",
        str(workdir / "config.yaml"),
    ]
    # The profile's shard count (64) is meant for real clusters; this one has 2 CPUs.
    cmd += ["--config", f"extraction={{'shards': {config['extraction']['shards']}}}"]
    cmd += [*cluster.snakemake_flags(), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=cluster.env, timeout=timeout)


def shard_stats(workdir):
    return [
        read_metadata(p)["stats"]
        for p in sorted((workdir / "results/demo/features/descriptors").glob("*.parquet"))
    ]


def test_cluster_run_matches_local_and_reuses_the_cache(slurm, tmp_path):
    cache = tmp_path / "cache"
    config = demo_config(cache)
    local = tmp_path / "local"
    local.mkdir()
    run_snakemake(local, config)
    before = cache_files(cache)
    assert len(before) == 48

    cluster = tmp_path / "cluster"
    cluster.mkdir()
    proc = slurm_snakemake(slurm, cluster, config)
    assert proc.returncode == 0, proc.stderr[-4000:]
    # The jobs ran through SLURM (one log folder per rule), except the local rules.
    logged = {p.name for p in (cluster / ".snakemake/slurm_logs").glob("rule_*")}
    assert {"rule_manifest", "rule_extract_features", "rule_feature_table", "rule_train"} <= logged
    assert not {"rule_report", "rule_submissions", "rule_rejected"} & logged
    # Cached features were reused, not recomputed.
    assert sum(s["computed"] for s in shard_stats(cluster)) == 0
    assert sum(s["cached"] for s in shard_stats(cluster)) == 48
    assert cache_files(cache) == before
    # Same results as the local run.
    for rel in ("results/demo/manifest.parquet", "results/demo/features/prosody.parquet"):
        assert pq.read_table(cluster / rel).equals(pq.read_table(local / rel)), rel
    for run in ("prosody-logreg", "prosody-majority"):
        rel = f"results/demo/runs/{run}/metrics.json"
        assert (cluster / rel).read_bytes() == (local / rel).read_bytes(), rel
    assert (cluster / "results/demo/submission.csv").read_bytes() == (
        local / "results/demo/submission.csv"
    ).read_bytes()


def test_job_killed_by_the_scheduler_leaves_no_partial_cache_entry(slurm, tmp_path):
    """scancel one extraction job while it writes the cache; the rerun finishes the rest."""
    cache = tmp_path / "cache"
    config = demo_config(cache, n_train=240, seed=4, shards=1)
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--workflow-profile", "none"]
    # The cluster's node has 2 CPUs; some rules ask for more (the manifest's probe threads).
    cmd += ["--configfile", str(workdir / "config.yaml"), "--max-threads", "2", *slurm.snakemake_flags()]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=slurm.env)
    deadline = time.monotonic() + 300
    while len(cache_files(cache)) < 20 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    n_at_kill = len(cache_files(cache))
    slurm.run("scancel", "--partition", slurm.partition)
    out, _ = proc.communicate(timeout=600)
    assert 20 <= n_at_kill < 248, "the job was not caught mid-extraction"
    assert proc.returncode != 0, out[-3000:]
    assert not (workdir / "results/demo/features/descriptors/000.parquet").exists()

    entries = list(cache.rglob("*.npy"))
    assert 20 <= len(entries) < 248
    for path in entries:  # every entry is complete; a temporary file never counts as one
        vec = np.load(path, allow_pickle=False)
        assert vec.dtype == np.float32 and vec.ndim == 1 and np.isfinite(vec).all()
    assert all(
        p.name.startswith(".") and p.suffix == ".tmp"
        for p in cache.rglob("*")
        if p.is_file() and p.suffix != ".npy" and p.name != ".numba-warm.lock" and p.parent.name != "probes"
    )

    proc = slurm_snakemake(slurm, workdir, config)
    assert proc.returncode == 0, proc.stderr[-4000:]
    [stats] = shard_stats(workdir)
    assert stats["cached"] == len(entries) and stats["computed"] == 248 - len(entries)
    assert len(cache_files(cache)) == 248


def test_deep_jobs_ask_slurm_for_the_gpus_the_config_gives(slurm, tmp_path):
    """``gpus: 1`` (the profile's commented line): ssl extraction asks sbatch for --gpus=1,
    the other jobs ask for none. This cluster has no GPU, so SLURM refuses exactly those jobs
    (with the default ``gpus: 0`` the first test of this file runs a whole workflow here)."""
    pytest.importorskip("transformers", reason="the deep extra is not installed")
    from test_ssl import tiny_checkpoint

    config = demo_config(tmp_path / "cache", n_train=20)
    config["features"] = {"ssl": {"checkpoint": tiny_checkpoint(tmp_path / "checkpoint")}}
    config["feature_sets"] = {"emb": ["ssl"]}
    config["feature_tables"] = ["prosody", "emb"]
    config["runs"] = [{"feature_sets": ["prosody", "emb"], "models": ["logreg"]}]
    work = tmp_path / "gpu"
    work.mkdir()
    proc = slurm_snakemake(slurm, work, config, "--config", "gpus=1", "--verbose")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    calls = [
        line for line in out.splitlines() if "sbatch call:" in line or line.strip().startswith("sbatch ")
    ]
    refused = out[out.index("SLURM sbatch failed") :]
    assert "--gpus=1" in refused.split("sbatch script")[0] and "extractor=ssl" in refused[:3000]
    descriptors = [c for c in calls if "extractor=descriptors" in c or "descriptors" in c]
    assert descriptors and not any("--gpus" in c for c in descriptors)
    # the descriptor jobs went on and ran (keep-going), the ssl table was never built
    assert list((work / "results/demo/features/descriptors").glob("*.parquet"))
    assert not (work / "results/demo/features/emb.parquet").exists()
