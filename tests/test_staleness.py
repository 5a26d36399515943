"""Reruns of what changed only: one new clip reruns one shard job (also when shard lists
are larger than Snakemake checksums); scoring settings and other columns refit nothing."""

import json
import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import job_counts, run_snakemake, tone, write_wav

from serflow.corpus.manifest import write_shards

SNAKEMAKE_CHECKSUM_LIMIT = 1_000_000  # bytes: above it Snakemake compares modification times


def test_unchanged_shard_lists_are_not_rewritten(tmp_path):
    manifest = pd.DataFrame({"id": [f"c{i}" for i in range(20)], "path": "p", "checksum": "0" * 32})
    paths = [tmp_path / f"{k}.tsv" for k in range(3)]
    digests = [tmp_path / f"{k}.digest" for k in range(3)]
    assert write_shards(manifest, paths, digests) == [True, True, True]
    mtimes = [p.stat().st_mtime_ns for p in paths]
    before = [d.read_text() for d in digests]
    assert write_shards(manifest, paths, digests) == [False, False, False]
    assert [p.stat().st_mtime_ns for p in paths] == mtimes and [d.read_text() for d in digests] == before
    grown = pd.concat([manifest, manifest.iloc[:1].assign(id="new")], ignore_index=True)
    written = write_shards(grown, paths, digests)
    assert sum(written) == 1 and "new" in paths[written.index(True)].read_text()
    assert [d.read_text() != b for d, b in zip(digests, before)] == written
    assert all(len(d.read_bytes()) == 65 for d in digests)


@pytest.mark.slow
def test_one_new_clip_reruns_one_shard_job_with_lists_over_1_mb(tmp_path):
    # 4 000 clips (hard links to one short clip) with long paths: each of the two shard
    # lists holds about 2 000 rows of some 600 bytes.
    folder = tmp_path / ("long_folder_name_" * 6) / ("nested_" * 14)
    source = write_wav(tmp_path / "source.wav", tone(seconds=0.05))
    rows = ["path,label"]
    for i in range(4001):
        name = folder / f"clip_{i:05d}_{'x' * 80}.wav"
        if i == 0:
            name.parent.mkdir(parents=True)
        os.link(source, name)
        if i < 4000:
            rows.append(f"{name.relative_to(tmp_path)},{'ab'[i % 2]}")
    table = tmp_path / "list.csv"
    table.write_text("\n".join(rows) + "\n")
    config = {
        "datasets": [{"name": "big", "adapter": "csv", "table": str(table)}],
        "extraction": {"shards": 2},
        "feature_tables": ["prosody"],
        "runs": [{"feature_sets": ["prosody"], "models": ["majority"]}],
        "evaluation": {"n_bootstrap": 10},
    }
    run_snakemake(tmp_path, config)
    lists = sorted((tmp_path / "results/big/shards").glob("*.tsv"))
    assert all(p.stat().st_size > SNAKEMAKE_CHECKSUM_LIMIT for p in lists)

    with open(table, "a") as f:
        f.write(f"{(folder / f'clip_04000_{chr(120) * 80}.wav').relative_to(tmp_path)},a\n")
    proc = run_snakemake(tmp_path, config)
    counts = job_counts(proc)
    assert counts["manifest"] == 1 and counts["extract_features"] == 1
    reason = [line for line in (proc.stdout + proc.stderr).splitlines() if "reason:" in line]
    assert any("shards/" in r and ".digest" in r for r in reason)
    assert len(pd.read_parquet(tmp_path / "results/big/features/prosody.parquet")) == 4001
    assert np.isfinite(pd.read_parquet(tmp_path / "results/big/features/prosody.parquet")["f0_mean"]).all()


def test_scoring_settings_and_other_columns_refit_nothing(tmp_path):
    config = {
        "datasets": [{"name": "demo", "adapter": "demo", "n_train": 24, "n_test": 8, "seed": 4}],
        "extraction": {"shards": 2},
        "feature_tables": ["prosody", "mfcc"],
        "runs": [
            {"feature_sets": ["prosody"], "models": ["majority", "logreg"]},
            {"feature_sets": ["mfcc"], "models": ["majority"]},
        ],
        "evaluation": {"n_bootstrap": 20},
    }
    run_snakemake(tmp_path, config)
    runs = tmp_path / "results/demo/runs"
    fitted = {p.parent.name: p.stat().st_mtime_ns for p in runs.glob("*/model.joblib")}

    # Interval settings: every run rescored, none refitted.
    config["evaluation"] = {"n_bootstrap": 30}
    dry = run_snakemake(tmp_path, config, "-n")
    assert "rule train:" not in dry.stdout and "rule score:" in dry.stdout
    counts = job_counts(run_snakemake(tmp_path, config))
    assert "train" not in counts and counts["score"] == 3
    metrics = json.loads((runs / "prosody-logreg/metrics.json").read_text())
    assert metrics["evaluation"]["n_bootstrap"] == 30 and len(metrics["uar_ci95"]) == 2

    # n_mfcc: every table is rebuilt (one extractor makes both), but only the runs whose
    # table content changed are refitted and rescored.
    config["features"] = {"n_mfcc": 16}
    counts = job_counts(run_snakemake(tmp_path, config))
    assert counts["extract_features"] == 2 and counts["feature_table"] == 2
    assert counts["train"] == 1 and counts["score"] == 1
    after = {p.parent.name: p.stat().st_mtime_ns for p in runs.glob("*/model.joblib")}
    assert {r for r in fitted if after[r] != fitted[r]} == {"mfcc-majority"}
    names = pq.read_schema(tmp_path / "results/demo/features/mfcc.parquet").names
    assert "mfcc15_mean" in names and "mfcc16_mean" not in names
