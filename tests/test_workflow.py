"""Integration: the real Snakemake workflow on the demo corpus and on EmoDB speakers."""

import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import cache_files, emodb_subset, job_counts, run_snakemake

from serflow.corpus.audio import checksum_bytes
from serflow.features import Descriptors, select_columns
from serflow.features.tables import read_metadata

# One cheap run: these tests are about the data stages (models: test_models_workflow.py).
MINIMAL_RUNS = [{"feature_sets": ["prosody"], "models": ["majority"]}]
DEMO = {
    "datasets": [{"name": "demo", "adapter": "demo", "n_train": 40, "n_test": 8, "seed": 3}],
    "runs": MINIMAL_RUNS,
}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    proc = run_snakemake(workdir, DEMO)
    return workdir, proc


def test_demo_run_builds_manifest_and_tables(demo_run):
    workdir, proc = demo_run
    counts = job_counts(proc)
    n_shards = len(list((workdir / "results/demo/shards").glob("*.tsv")))
    assert counts["corpus"] == 1 and counts["manifest"] == 1
    assert counts["extract_features"] == n_shards and counts["feature_table"] == 6
    manifest = pd.read_parquet(workdir / "results/demo/manifest.parquet")
    assert len(manifest) == 48 and manifest["id"].is_unique
    assert set(manifest["split"]) == {"train", "test"}
    assert manifest.loc[manifest.split == "test", "label"].isna().all()
    assert manifest.loc[manifest.split == "train", "label"].notna().all()
    assert manifest["duration_s"].between(1.0, 3.0).all() and (manifest["sample_rate"] == 16000).all()
    assert manifest["checksum"].str.fullmatch(r"[0-9a-f]{32}").all()

    groups = Descriptors().column_groups()
    for feature_set, wanted in {
        "prosody": ["prosody"],
        "mfcc_deltas": ["mfcc", "mfcc_deltas"],
        "all": ["all"],
    }.items():
        path = workdir / f"results/demo/features/{feature_set}.parquet"
        table = pq.read_table(path)
        cols = select_columns(groups, wanted)
        assert table.column_names == ["id", "label", "speaker", "split", "stratum", *cols]
        assert all(table.schema.field(c).type == "float" for c in cols)
        x = np.column_stack([table[c].to_numpy() for c in cols])
        assert np.isfinite(x).all() and x.std(axis=0).max() > 0
        meta = read_metadata(path)
        assert meta["feature_set"] == feature_set
        assert meta["extractors"]["descriptors"]["params"]["n_mfcc"] == 13
        assert meta["column_groups"] == {c: groups[c] for c in cols}
        assert meta["versions"]["librosa"] == "0.11.0"
        assert table["id"].to_pylist() == manifest["id"].tolist()
    assert pd.read_csv(workdir / "results/demo/rejected.csv").empty


def test_nothing_changed_runs_nothing(demo_run):
    workdir, _ = demo_run
    proc = run_snakemake(workdir, DEMO)
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert job_counts(proc) == {}


def test_feature_set_change_recomputes_no_features(demo_run):
    workdir, _ = demo_run
    before = cache_files(workdir / "results/cache")
    config = {**DEMO, "feature_sets": {"mfcc": ["mfcc", "spectral"]}}
    proc = run_snakemake(workdir, config)
    assert job_counts(proc).get("feature_table") == 1 and "train" not in job_counts(proc)
    assert cache_files(workdir / "results/cache") == before
    table = pq.read_table(workdir / "results/demo/features/mfcc.parquet")
    assert "zcr_mean" in table.column_names and "mfcc00_mean" in table.column_names


def test_extractor_parameter_change_recomputes_features(demo_run):
    workdir, _ = demo_run
    before = cache_files(workdir / "results/cache")
    config = {**DEMO, "features": {"n_mfcc": 14}}
    proc = run_snakemake(workdir, config)
    counts = job_counts(proc)
    assert counts["extract_features"] >= 1 and "manifest" not in counts
    after = cache_files(workdir / "results/cache")
    new = set(after) - set(before)
    assert len(new) == 48  # every clip once, under the new parameter key
    assert {tuple(p.split("/")[:2]) for p in new} == {("descriptors", Descriptors(n_mfcc=14).cache_key())}
    assert "mfcc13_mean" in pq.read_table(workdir / "results/demo/features/mfcc.parquet").column_names


def test_invalid_config_stops_before_any_job(tmp_path):
    proc = run_snakemake(tmp_path, {**DEMO, "featurs": {}}, check=False)
    assert proc.returncode != 0
    assert "config key 'featurs' (top level) is not a setting; did you mean 'features'?" in (
        proc.stdout + proc.stderr
    )
    # ("13" would pass: numbers given as text, as --config gives them, are read as numbers)
    proc = run_snakemake(tmp_path, {**DEMO, "features": {"n_mfcc": "thirteen"}}, check=False)
    assert proc.returncode != 0 and "n_mfcc" in proc.stderr
    assert not (tmp_path / "results").exists()


def test_table_error_stops_before_any_job(tmp_path):
    (tmp_path / "list.csv").write_text("file,label\na.wav,x\n")
    config = {"datasets": [{"name": "c", "adapter": "csv", "table": str(tmp_path / "list.csv")}]}
    proc = run_snakemake(tmp_path, config, check=False)
    assert proc.returncode != 0
    assert "list.csv: missing column(s) 'path'" in proc.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.emodb
def test_emodb_speakers_and_adding_one_file(emodb, tmp_path):
    corpus = emodb_subset(emodb, tmp_path / "corpus", speakers=("03", "08", "09"))
    extra = sorted(emodb.glob("10*.wav"))[0]
    config = {
        "datasets": [{"name": "emodb3", "adapter": "emodb", "root": str(corpus)}],
        "feature_tables": ["prosody", "all"],
        "extraction": {"shards": 3},
        "runs": MINIMAL_RUNS,
    }
    run_snakemake(tmp_path, config)
    manifest = pd.read_parquet(tmp_path / "results/emodb3/manifest.parquet")
    n = len(list(corpus.glob("*.wav")))
    assert len(manifest) == n and set(manifest["speaker"]) == {"03", "08", "09"}
    assert set(manifest["label"]) == {
        "anger",
        "boredom",
        "disgust",
        "fear",
        "happiness",
        "sadness",
        "neutral",
    }
    table = pd.read_parquet(tmp_path / "results/emodb3/features/all.parquet")
    assert len(table) == n
    # Angry speech is higher pitched than sad speech, on average.
    means = table.groupby("label")["f0_mean"].mean()
    assert means["anger"] > means["sadness"] + 20

    before = cache_files(tmp_path / "results/cache")
    assert len(before) == n
    shutil.copy2(extra, corpus / extra.name)
    proc = run_snakemake(tmp_path, config)
    counts = job_counts(proc)
    assert counts["manifest"] == 1 and counts["extract_features"] == 1
    after = cache_files(tmp_path / "results/cache")
    new = set(after) - set(before)
    assert len(new) == 1 and new.pop().endswith(f"{checksum_bytes(extra.read_bytes())}.npy")
    assert {k: after[k] for k in before} == before  # no other entry rewritten
    assert len(pd.read_parquet(tmp_path / "results/emodb3/features/all.parquet")) == n + 1
