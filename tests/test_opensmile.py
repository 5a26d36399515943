"""The optional openSMILE extractor: eGeMAPSv02 and ComParE_2016 functionals beside librosa's."""

import importlib.util
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import run_snakemake, tone, write_wav

from serflow.corpus.audio import load_audio
from serflow.features import Clip, ComParE, Descriptors, EGeMAPS, FeatureSpec, select_columns
from serflow.features.extraction import extract_shard
from serflow.features.opensmile import opensmile_functionals
from serflow.features.tables import ID_COLUMNS

opensmile = pytest.importorskip("opensmile", reason="the optional opensmile package is not installed")
BOTH = FeatureSpec.from_config({"opensmile": ["eGeMAPSv02", "ComParE_2016"]})


def feature_names(spec):
    return [n for e in spec.extractors for n in e.names()]


def column_groups(spec):
    return {n: g for e in spec.extractors for n, g in e.columns()}


def extract_features(y, spec):
    clip = Clip(y, 16000)
    return np.concatenate([e.compute(clip) for e in spec.extractors])


def smile_names(feature_set):
    smile = opensmile.Smile(feature_set=feature_set, feature_level=opensmile.FeatureLevel.Functionals)
    return smile.feature_names


def test_names_follow_the_librosa_columns_in_their_own_groups():
    librosa_names = Descriptors().names()
    names = feature_names(BOTH)
    egemaps, compare = smile_names("eGeMAPSv02"), smile_names("ComParE_2016")
    assert (len(egemaps), len(compare)) == (88, 6373)
    assert names == librosa_names + [f"egemaps_{n}" for n in egemaps] + [f"compare_{n}" for n in compare]
    assert len(set(names)) == len(names)
    groups = column_groups(BOTH)
    assert select_columns(groups, ["egemaps"]) == [f"egemaps_{n}" for n in egemaps]
    assert len(select_columns(groups, ["compare"])) == 6373
    assert select_columns(groups, ["prosody", "mfcc", "mfcc_deltas", "spectral", "mel"]) == librosa_names
    assert BOTH.names == ["descriptors", "egemaps", "compare"]
    assert list(BOTH.groups)[-2:] == ["egemaps", "compare"]
    assert BOTH.needs(["prosody", "compare"]) == ["descriptors", "compare"]


def test_values_are_openSMILEs_own_finite_and_repeatable():
    y = tone(seconds=1.5)
    vec = extract_features(y, BOTH)
    assert vec.shape == (len(feature_names(BOTH)),) and vec.dtype == np.float32
    assert np.isfinite(vec).all()
    smile = opensmile.Smile(feature_set="eGeMAPSv02", feature_level=opensmile.FeatureLevel.Functionals)
    direct = smile.process_signal(y, 16000).to_numpy().ravel().astype(np.float32)
    n_librosa = len(Descriptors().names())
    np.testing.assert_array_equal(vec[n_librosa : n_librosa + 88], direct)
    np.testing.assert_array_equal(vec[:n_librosa], Descriptors().compute(Clip(y, 16000)))
    np.testing.assert_array_equal(extract_features(y, BOTH), vec)
    silent = extract_features(np.zeros(16000, np.float32), BOTH)
    assert np.isfinite(silent).all()


def test_full_scale_samples_do_not_wrap_around():
    # openSMILE scales by 32768 into int16: +1.0 would wrap to -32768 unless clipped.
    square = np.sign(np.sin(2 * np.pi * 150 * np.arange(16000) / 16000)).astype(np.float32)
    square[square == 0] = 1.0
    assert (square == 1.0).any()
    full = opensmile_functionals(square, 16000, "eGeMAPSv02")
    largest = square.copy()
    largest[square == 1.0] = 32767 / 32768  # the largest int16 value
    np.testing.assert_array_equal(full, opensmile_functionals(largest, 16000, "eGeMAPSv02"))
    # Wrapped around, the +1.0 half-periods would read as -1.0: a constant signal.
    assert not np.allclose(full, opensmile_functionals(-np.abs(square), 16000, "eGeMAPSv02"))


def test_too_short_clips_are_refused_before_and_rejected_during_extraction(tmp_path):
    assert BOTH.min_samples == 960  # 60 ms at 16 kHz
    assert FeatureSpec.from_config({"opensmile": ["eGeMAPSv02"], "sample_rate": 8000}).min_samples == 512
    short = write_wav(tmp_path / "short.wav", tone(seconds=0.04))
    with pytest.warns(UserWarning, match="Segment too short"):  # openSMILE's own word
        matrix, errors, stats = extract_shard(
            EGeMAPS(), ["short"], [str(short)], ["c" * 64], tmp_path / "cache"
        )
    assert np.isnan(matrix).all() and stats.failed == 1 and stats.computed == 0
    assert errors[0].startswith("non-finite feature values") and "egemaps_" in errors[0]
    assert not list((tmp_path / "cache").rglob("*.npy"))


def test_params_validate_and_each_set_has_its_own_cache_key(monkeypatch):
    with pytest.raises(ValueError, match="unknown openSMILE feature set 'IS09'"):
        FeatureSpec.from_config({"opensmile": ["IS09"]})
    assert FeatureSpec.from_config({"egemaps": True, "compare": True}) == BOTH
    keys = {EGeMAPS().cache_key(), ComParE().cache_key(), EGeMAPS(sample_rate=22050).cache_key()}
    assert len(keys) == 3
    # openSMILE's parameters do not reach the librosa descriptors' key
    assert BOTH["descriptors"].cache_key() == Descriptors().cache_key()

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "opensmile" else real(n, *a))
    with pytest.raises(ValueError, match=r"pip install 'serflow\[opensmile\]'"):
        FeatureSpec.from_config({"opensmile": ["eGeMAPSv02"]})


DEMO = {"name": "demo", "adapter": "demo", "n_train": 40, "n_test": 8, "seed": 5}


@pytest.mark.slow
def test_workflow_builds_opensmile_tables_and_runs(tmp_path):
    config = {
        "datasets": [DEMO],
        "features": {"opensmile": ["eGeMAPSv02"]},
        "feature_sets": {"prosody_egemaps": ["prosody", "egemaps"]},
        "feature_tables": ["egemaps"],
        "models": {
            "logreg": {"kind": "logreg", "class_weight": "balanced"},
            # prosody or eGeMAPS, chosen inside each training fold
            "logreg_pick": {"kind": "logreg", "feature_groups": [["prosody"], ["egemaps"]]},
        },
        "runs": [
            {"feature_sets": ["egemaps", "prosody_egemaps"], "models": ["logreg"]},
            {"feature_sets": ["prosody_egemaps"], "models": ["logreg_pick"]},
        ],
        "evaluation": {"n_bootstrap": 50},
    }
    run_snakemake(tmp_path, config)
    results = tmp_path / "results/demo"
    table = pq.read_table(results / "features/egemaps.parquet").to_pandas()
    egemaps = [f"egemaps_{n}" for n in smile_names("eGeMAPSv02")]
    assert [c for c in table.columns if c.startswith("egemaps_")] == egemaps
    assert len(table) == 48 and np.isfinite(table[egemaps].to_numpy()).all()
    manifest = pq.read_table(results / "manifest.parquet").to_pandas().set_index("id")
    clip = table["id"].iloc[0]
    y = load_audio(tmp_path / manifest.loc[clip, "path"], 16000)
    direct = opensmile_functionals(y, 16000, "eGeMAPSv02")
    np.testing.assert_array_equal(table[egemaps].iloc[0].to_numpy(), direct.astype(np.float32))
    mixed = pq.read_schema(results / "features/prosody_egemaps.parquet").names
    assert "f0_mean" in mixed and egemaps[0] in mixed and "mfcc00_mean" not in mixed
    assert (results / "runs/egemaps-logreg/metrics.json").is_file()
    assert (results / "runs/prosody_egemaps-logreg/metrics.json").is_file()
    picked = json.loads((results / "runs/prosody_egemaps-logreg_pick/metrics.json").read_text())
    assert picked["model"]["feature_groups"] == [["prosody"], ["egemaps"]]
    assert len(picked["folds"]) > 1
    assert all(f["params"]["feature_groups"] in (["prosody"], ["egemaps"]) for f in picked["folds"])
    importance = pd.read_csv(results / "runs/prosody_egemaps-logreg_pick/importance.csv")
    assert len(importance) == len(mixed) - len(ID_COLUMNS)  # columns left out count 0
    kept = importance[importance["importance"] > 0]["feature"]
    assert kept.str.startswith("egemaps_").all() or not kept.str.startswith("egemaps_").any()
    page = (tmp_path / "results/report.html").read_text(encoding="utf-8")
    assert "eGeMAPSv02" in page
    assert 'feature groups [["prosody"], ["egemaps"]]' in page


def test_a_table_needing_opensmile_stops_the_run_before_any_job(tmp_path):
    config = {
        "datasets": [DEMO],
        "feature_tables": ["compare"],
        "models": {"majority": {"kind": "majority"}},
        "runs": [{"feature_sets": ["prosody"], "models": ["majority"]}],
    }
    proc = run_snakemake(tmp_path, config, "-n", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert (
        "dataset 'demo': feature set 'compare' needs the group 'compare': "
        "set features: {opensmile: [ComParE_2016]}"
    ) in out
    assert not (tmp_path / "results").exists()
