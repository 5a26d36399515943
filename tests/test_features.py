import numpy as np
import pytest
from conftest import tone

from serflow.features import (
    FeatureParams,
    extract_features,
    feature_group,
    feature_names,
    functionals,
    select_columns,
)

P = FeatureParams()


def test_names_match_vector_and_are_unique():
    names = feature_names(P)
    vec = extract_features(tone(), P)
    assert vec.shape == (len(names),) and vec.dtype == np.float32
    assert len(set(names)) == len(names)
    for expected in ("mfcc03_mean", "f0_p90", "energy_slope", "mfcc12_delta2_std", "mel39_max", "tempo_bpm"):
        assert expected in names


def test_f0_of_a_tone_is_its_frequency():
    names = feature_names(P)
    for freq in (110.0, 220.0):
        vec = dict(zip(names, extract_features(tone(freq, 1.0), P)))
        assert vec["f0_p50"] == pytest.approx(freq, rel=0.03)
        assert vec["f0_voiced_fraction"] > 0.7


def test_silence_gives_defined_features_and_no_voicing():
    vec = dict(zip(feature_names(P), extract_features(np.zeros(16000, np.float32), P)))
    assert all(np.isfinite(v) for v in vec.values())
    assert vec["f0_voiced_fraction"] == 0.0
    assert vec["f0_mean"] == 0.0


def test_shortest_clip_works():
    vec = extract_features(tone(seconds=P.min_samples / P.sample_rate), P)
    assert np.isfinite(vec).all()


def test_functionals_values():
    x = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    t = np.arange(5) * 0.5
    names = ["mean", "std", "min", "max", "range", "slope", "p50", "iqr", "skew", "kurtosis"]
    out = dict(zip(names, functionals(x, names, t)[0]))
    assert out["mean"] == 3.0 and out["min"] == 1.0 and out["max"] == 5.0 and out["range"] == 4.0
    assert out["std"] == pytest.approx(np.sqrt(2.0))
    assert out["slope"] == pytest.approx(2.0)  # one unit per 0.5 s
    assert out["p50"] == 3.0 and out["iqr"] == 2.0 and out["skew"] == pytest.approx(0.0)
    assert out["kurtosis"] == pytest.approx(-1.3)
    assert (functionals(np.zeros((2, 0)), names, np.zeros(0)) == 0).all()


def test_energy_slope_follows_a_fade():
    y = tone(200.0, 1.5) * np.linspace(1.0, 0.05, 24000, dtype=np.float32)
    vec = dict(zip(feature_names(P), extract_features(y, P)))
    assert vec["energy_slope"] < -10  # dB per second


def test_groups_and_selection():
    names = feature_names(P)
    assert feature_group("f0_mean") == "prosody" and feature_group("tempo_bpm") == "prosody"
    assert feature_group("mfcc03_delta_mean") == "mfcc_deltas" and feature_group("mfcc03_mean") == "mfcc"
    assert feature_group("spectral_flatness_p10") == "spectral" and feature_group("mel07_std") == "mel"
    assert select_columns(names, ["all"]) == names
    mfcc = select_columns(names, ["mfcc"])
    assert len(mfcc) == P.n_mfcc * len(P.functionals) and all("_delta" not in c for c in mfcc)
    both = select_columns(names, ["prosody", "mel"])
    assert {feature_group(c) for c in both} == {"prosody", "mel"}
    with pytest.raises(ValueError, match="unknown feature group"):
        select_columns(names, ["pitch"])


def test_params_validation_and_cache_key():
    with pytest.raises(ValueError, match="unknown feature parameter"):
        FeatureParams.from_config({"n_mfc": 20})
    with pytest.raises(ValueError, match="unknown functional"):
        FeatureParams(functionals=("mean", "median"))
    with pytest.raises(ValueError, match="f0_max"):
        FeatureParams(f0_min=300, f0_max=200)
    assert FeatureParams().cache_key() == FeatureParams.from_config({}).cache_key()
    assert FeatureParams(n_mfcc=20).cache_key() != FeatureParams().cache_key()
    more = FeatureParams(n_mfcc=20, n_mels=64, functionals=("mean", "p01", "p99"))
    assert len(feature_names(more)) == len(extract_features(tone(), more))
