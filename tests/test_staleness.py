"""Adding one clip reruns one shard job, also when shard lists are larger than Snakemake checksums."""

import os

import numpy as np
import pandas as pd
import pytest
from conftest import job_counts, run_snakemake, tone, write_wav

from serflow.manifest import write_shards

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
