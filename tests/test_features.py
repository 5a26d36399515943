import dataclasses

import numpy as np
import pytest
from conftest import tone

from serflow.features import (
    ENERGY_BANDS,
    EXTENDED_GROUPS,
    GROUPS,
    OPENSMILE_SETS,
    RHYTHM,
    FeatureParams,
    _frames,
    extended_descriptor_names,
    extended_descriptors,
    extract_features,
    feature_group,
    feature_names,
    functionals,
    rhythm,
    select_columns,
    yin,
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


# Extended descriptors (extended=True): opt-in columns in their own groups.

X = FeatureParams(extended=True)


def _noise(seconds=1.0, sr=16000, seed=0):
    return (0.3 * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


def _bursts(sr=16000, burst=0.5, gap=0.4):
    """Two voiced tone bursts separated by ``gap`` seconds of silence, with silence around."""
    silence = np.zeros(int(0.3 * sr), np.float32)
    pause = np.zeros(int(gap * sr), np.float32)
    return np.concatenate([silence, tone(150.0, burst), pause, tone(180.0, burst), silence])


def test_extended_is_opt_in_and_appends_named_columns():
    base, ext = feature_names(P), feature_names(X)
    assert ext[: len(base)] == base  # default columns unchanged, extended ones appended
    assert len(set(ext)) == len(ext)
    vec = extract_features(tone(), X)
    assert vec.shape == (len(ext),) and vec.dtype == np.float32
    assert np.array_equal(vec[: len(base)], extract_features(tone(), P))
    added = {feature_group(c) for c in ext[len(base) :]}
    assert added == set(EXTENDED_GROUPS)
    assert {feature_group(c) for c in base}.isdisjoint(EXTENDED_GROUPS)
    for expected in (
        "spectral_contrast6_mean",
        "spectral_flux_p90",
        "band_energy_4000_8000_mean",
        "alpha_ratio_mean",
        "hammarberg_index_mean",
        "spectral_rolloff95_p50",
        "spectral_centroid_delta_std",
        "aperiodicity_mean",
        "voiced_hnr_p50",
        "f0_semitones_absdelta_mean",
        "energy_delta2_std",
        *RHYTHM,
    ):
        assert expected in ext
    assert FeatureParams(extended=True).cache_key() != P.cache_key()
    n_fun = len(P.functionals)
    rows = sum(len(r) for r in extended_descriptor_names())
    assert len(ext) - len(base) == rows * n_fun + len(RHYTHM)


def test_extended_groups_select_their_columns():
    names = feature_names(X)
    assert feature_group("spectral_contrast3_p10") == "spectral_shape"
    assert feature_group("spectral_centroid_delta_mean") == "spectral_deltas"
    assert feature_group("spectral_centroid_mean") == "spectral"  # default column, default group
    assert feature_group("hnr_delta_std") == "voice_quality"
    assert feature_group("f0_semitones_mean") == "prosody_dynamics"
    assert feature_group("energy_delta_mean") == "prosody_dynamics"
    assert feature_group("rhythm_pause_mean_s") == "rhythm"
    assert select_columns(names, ["rhythm"]) == list(RHYTHM)
    assert select_columns(names, ["all"]) == names
    assert select_columns(feature_names(P), ["voice_quality"]) == []


def test_extended_params_validation():
    with pytest.raises(ValueError, match="sample_rate"):
        FeatureParams(extended=True, sample_rate=8000, f0_max=400)
    with pytest.raises(ValueError, match="n_fft"):
        FeatureParams(extended=True, n_fft=128, hop_length=64)


@pytest.mark.parametrize(
    "signal",
    [np.zeros(16000, np.float32), tone(seconds=X.min_samples / X.sample_rate), tone(), _noise()],
    ids=["silence", "shortest", "tone", "noise"],
)
def test_extended_descriptors_are_finite_before_any_cleaning(signal):
    fr = _frames(signal, X)
    every, t_every, voiced, t_voiced, pairs, t_pairs, scalars = extended_descriptors(signal, fr, X)
    n_every, n_voiced, n_pairs = map(len, extended_descriptor_names())
    assert every.shape == (n_every, fr["n"]) and voiced.shape[0] == n_voiced and pairs.shape[0] == n_pairs
    assert voiced.shape[1] == t_voiced.size and pairs.shape[1] == t_pairs.size
    for part in (every, voiced, pairs, scalars):
        assert np.isfinite(part).all()
    vec = extract_features(signal, X)
    assert np.isfinite(vec).all() and vec.shape == (len(feature_names(X)),)


def test_silence_extended_values():
    vec = dict(zip(feature_names(X), extract_features(np.zeros(16000, np.float32), X)))
    assert vec["aperiodicity_min"] == 1.0  # silent frames are aperiodic
    assert vec["rhythm_voiced_segments_per_s"] == 0.0 and vec["rhythm_pauses_per_s"] == 0.0
    assert vec["rhythm_duration_s"] == pytest.approx(1.0)


YIN_ARGS = {"fmin": P.f0_min, "fmax": P.f0_max, "sr": P.sample_rate, "frame_length": P.f0_frame_length}


@pytest.mark.parametrize("freq", [110.0, 237.0])
def test_yin_port_gives_librosa_f0_on_tones(freq):
    import librosa

    y = tone(freq, 0.8)
    f0, _ = yin(y, hop_length=P.hop_length, **YIN_ARGS)
    assert np.array_equal(f0, librosa.yin(y, hop_length=P.hop_length, **YIN_ARGS))
    noise = _noise(0.5)
    f0, _ = yin(noise, hop_length=P.hop_length, **YIN_ARGS)
    assert np.array_equal(f0, librosa.yin(noise, hop_length=P.hop_length, **YIN_ARGS))


def test_yin_port_gives_librosa_f0_on_emodb(emodb):
    import librosa

    from serflow.audio import load_audio

    for path in sorted(emodb.glob("*.wav"))[:: len(list(emodb.glob("*.wav"))) // 4][:4]:
        y = load_audio(path, P.sample_rate)
        f0, ap = yin(y, hop_length=P.hop_length, **YIN_ARGS)
        assert np.array_equal(f0, librosa.yin(y, hop_length=P.hop_length, **YIN_ARGS)), path.name
        assert ap.shape == f0.shape and (ap > 0.01).any() and (ap < 0.2).any()


def test_aperiodicity_low_for_a_harmonic_tone_high_for_noise():
    names = feature_names(X)
    harmonic = dict(zip(names, extract_features(tone(200.0, 1.0), X)))
    noise = dict(zip(names, extract_features(_noise(), X)))
    # librosa's difference function leaves out the frame's last-period energy, so even a
    # perfectly periodic frame keeps a small aperiodicity (about 0.04 here).
    assert harmonic["aperiodicity_p50"] < 0.1 and harmonic["hnr_p50"] > 9.0
    assert noise["aperiodicity_p50"] > 0.5 and noise["hnr_p50"] < 0.0


def test_band_energy_of_a_300_hz_tone_peaks_in_the_lowest_band():
    vec = dict(zip(feature_names(X), extract_features(tone(300.0, 1.0, harmonics=1), X)))
    bands = [vec[f"band_energy_{lo}_{hi}_p50"] for lo, hi in ENERGY_BANDS]
    assert int(np.argmax(bands)) == 0 and bands[0] - max(bands[1:]) > 20.0
    assert vec["alpha_ratio_p50"] > 20.0  # energy below 1 kHz dominates
    assert vec["spectral_rolloff50_p50"] == pytest.approx(300.0, abs=40.0)


def test_rhythm_of_two_bursts():
    for gap in (0.25, 0.4):
        vec = dict(zip(feature_names(X), extract_features(_bursts(gap=gap), X)))
        duration = 0.3 + 0.5 + gap + 0.5 + 0.3
        assert vec["rhythm_duration_s"] == pytest.approx(duration, abs=1e-3)
        assert vec["rhythm_voiced_segments_per_s"] * duration == pytest.approx(2.0, abs=1e-3)
        assert vec["rhythm_pauses_per_s"] * duration == pytest.approx(1.0, abs=1e-3)
        assert vec["rhythm_pause_mean_s"] == pytest.approx(gap, abs=0.06)
        assert vec["rhythm_pause_std_s"] == 0.0
        assert vec["rhythm_voiced_segment_mean_s"] == pytest.approx(0.5, abs=0.08)


def test_rhythm_scalars_directly():
    voiced = np.array([0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 1, 0], dtype=bool)
    out = dict(zip(RHYTHM, rhythm(voiced, duration=1.2, frame_step=0.1)))
    assert out["rhythm_voiced_segments_per_s"] == pytest.approx(3 / 1.2)
    assert out["rhythm_voiced_segment_mean_s"] == pytest.approx(0.2)
    assert out["rhythm_pause_mean_s"] == pytest.approx(0.2)  # 0.3 and 0.1; edges excluded
    assert out["rhythm_pause_std_s"] == pytest.approx(0.1)
    assert out["rhythm_pauses_per_s"] == pytest.approx(2 / 1.2)


def test_schema_knows_every_group_and_parameter():
    import yaml
    from conftest import REPO

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    group = {"$ref": "#/$defs/group"}
    assert schema["properties"]["feature_sets"]["additionalProperties"]["items"] == group
    assert schema["$defs"]["model"]["properties"]["feature_groups"]["items"]["items"] == group
    assert set(schema["$defs"]["group"]["enum"]) == {*GROUPS, "all"}
    properties = schema["$defs"]["features"]["properties"]
    assert set(properties) == {f.name for f in dataclasses.fields(FeatureParams)}
    assert properties["opensmile"]["items"]["enum"] == list(OPENSMILE_SETS)
