"""Feature store v2 in the real workflow: each extractor its own cache, shards and reruns."""

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import cache_files, job_counts, run_snakemake

from serflow.features import Descriptors, Extended
from serflow.features.tables import read_metadata

N_CLIPS = 32
BASE = {
    "datasets": [{"name": "demo", "adapter": "demo", "n_train": 24, "n_test": 8, "seed": 4}],
    "extraction": {"shards": 2},
    "feature_sets": {"voice": ["prosody", "voice_quality"]},
    "feature_tables": ["prosody", "all"],
    "runs": [{"feature_sets": ["prosody"], "models": ["majority"]}],
    "evaluation": {"n_bootstrap": 20},
}


def entries(workdir, extractor):
    return cache_files(workdir / "results/cache" / extractor)


def shard_mtimes(workdir, extractor):
    return {p.name: p.stat().st_mtime_ns for p in (workdir / "results/demo/features" / extractor).glob("*")}


@pytest.mark.slow
def test_enabling_and_changing_one_extractor_computes_only_that_one(tmp_path):
    opensmile = pytest.importorskip("opensmile", reason="the optional opensmile package is not installed")
    del opensmile
    run_snakemake(tmp_path, BASE)
    base = entries(tmp_path, "descriptors")
    base_shards = shard_mtimes(tmp_path, "descriptors")
    assert len(base) == N_CLIPS and all(k.startswith(Descriptors().cache_key()) for k in base)

    # 1. extended on: only its extraction jobs; tables and runs without its groups stay
    extended = {**BASE, "features": {"extended": True}}
    proc = run_snakemake(tmp_path, extended)
    counts = job_counts(proc)
    assert counts["extract_features"] == 2 and counts["feature_table"] == 1  # all, not prosody
    assert "train" not in counts and "manifest" not in counts
    assert entries(tmp_path, "descriptors") == base
    assert shard_mtimes(tmp_path, "descriptors") == base_shards
    ext = entries(tmp_path, "extended")
    assert len(ext) == N_CLIPS and all(k.startswith(Extended().cache_key()) for k in ext)
    for shard in (tmp_path / "results/demo/features/extended").glob("*.parquet"):
        stats = read_metadata(shard)["stats"]
        assert stats["cached"] == 0 and stats["computed"] == pq.read_metadata(shard).num_rows
    all_cols = pq.read_schema(tmp_path / "results/demo/features/all.parquet").names
    assert "f0_mean" in all_cols and "hnr_mean" in all_cols

    # 2. openSMILE too: only eGeMAPS computed
    smile = {**BASE, "features": {"extended": True, "opensmile": ["eGeMAPSv02"]}}
    proc = run_snakemake(tmp_path, smile)
    assert job_counts(proc)["extract_features"] == 2
    assert entries(tmp_path, "descriptors") == base and entries(tmp_path, "extended") == ext
    egemaps = entries(tmp_path, "egemaps")
    assert len(egemaps) == N_CLIPS

    # 3. an extended-only parameter: base and openSMILE untouched, extended under a new key
    fewer = {**BASE, "features": {"extended": {"contrast_bands": 4}, "opensmile": ["eGeMAPSv02"]}}
    proc = run_snakemake(tmp_path, fewer)
    assert job_counts(proc)["extract_features"] == 2
    assert entries(tmp_path, "descriptors") == base and entries(tmp_path, "egemaps") == egemaps
    after = entries(tmp_path, "extended")
    assert {k: after[k] for k in ext} == ext  # the old entries stay, unrewritten
    new = {k for k in after if k not in ext}
    assert len(new) == N_CLIPS and all(k.startswith(Extended(contrast_bands=4).cache_key()) for k in new)
    cols = pq.read_schema(tmp_path / "results/demo/features/all.parquet").names
    assert "spectral_contrast4_mean" in cols and "spectral_contrast5_mean" not in cols

    # 4. and back: every entry is cached, nothing is computed
    proc = run_snakemake(tmp_path, smile)
    for shard in (tmp_path / "results/demo/features/extended").glob("*.parquet"):
        assert read_metadata(shard)["stats"]["computed"] == 0
    table = pq.read_table(tmp_path / "results/demo/features/all.parquet")
    assert np.isfinite(np.column_stack([table[c].to_numpy() for c in table.column_names[5:]])).all()
