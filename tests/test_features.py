import numpy as np
import pytest
from conftest import tone

from serflow.features import Clip, Descriptors, Extended, FeatureSpec, select_columns
from serflow.features.descriptors import analysis
from serflow.features.extended import ENERGY_BANDS, RHYTHM, extended_descriptors, rhythm
from serflow.features.functionals import functionals
from serflow.features.pitch import yin

P = Descriptors()
EXTENDED_GROUPS = Extended.GROUPS


def extract_features(y, ext):
    return ext.compute(Clip(y, ext.sample_rate))


def feature_names(ext):
    return ext.names()


def feature_group(name, ext=None):
    groups = {**P.column_groups(), **X.column_groups()} if ext is None else ext.column_groups()
    return groups[name]


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
    groups = P.column_groups()
    assert select_columns(groups, ["all"]) == names
    mfcc = select_columns(groups, ["mfcc"])
    assert len(mfcc) == P.n_mfcc * len(P.functionals) and all("_delta" not in c for c in mfcc)
    both = select_columns(groups, ["prosody", "mel"])
    assert {feature_group(c) for c in both} == {"prosody", "mel"}
    with pytest.raises(ValueError, match="unknown feature group"):
        select_columns(groups, ["pitch"])


def test_params_validation_and_cache_key():
    with pytest.raises(ValueError, match="unknown feature parameter"):
        FeatureSpec.from_config({"n_mfc": 20})
    with pytest.raises(ValueError, match="unknown parameter.*'descriptors'.*n_mfc"):
        FeatureSpec.from_config({"descriptors": {"n_mfc": 20}})
    with pytest.raises(ValueError, match="unknown functional"):
        Descriptors(functionals=("mean", "median"))
    with pytest.raises(ValueError, match="f0_max"):
        Descriptors(f0_min=300, f0_max=200)
    assert Descriptors().cache_key() == FeatureSpec.from_config({})["descriptors"].cache_key()
    assert Descriptors(n_mfcc=20).cache_key() != Descriptors().cache_key()
    # a parameter only another extractor has leaves this one's key alone
    assert Descriptors.from_config({"contrast_bands": 4}).cache_key() == Descriptors().cache_key()
    # YAML's 500 and the class default 500.0 are one setting, so one cache (config/config.yaml
    # writes ints; a script building the extractor gets floats)
    assert Descriptors.from_config({"f0_min": 60, "f0_max": 500}).cache_key() == Descriptors().cache_key()
    assert Descriptors(f0_max=400.5).cache_key() != Descriptors().cache_key()
    more = Descriptors(n_mfcc=20, n_mels=64, functionals=("mean", "p01", "p99"))
    assert len(feature_names(more)) == len(extract_features(tone(), more))


# Extended descriptors (extended: true): an opt-in extractor with its own groups.

X = Extended()


def _noise(seconds=1.0, sr=16000, seed=0):
    return (0.3 * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


def _bursts(sr=16000, burst=0.5, gap=0.4):
    """Two voiced tone bursts separated by ``gap`` seconds of silence, with silence around."""
    silence = np.zeros(int(0.3 * sr), np.float32)
    pause = np.zeros(int(gap * sr), np.float32)
    return np.concatenate([silence, tone(150.0, burst), pause, tone(180.0, burst), silence])


def test_extended_is_opt_in_with_its_own_named_columns():
    assert FeatureSpec.from_config({}).names == ["descriptors"]
    spec = FeatureSpec.from_config({"extended": True})
    assert spec.names == ["descriptors", "extended"]
    base, ext = feature_names(P), feature_names(X)
    assert not set(base) & set(ext) and len(set(ext)) == len(ext)
    vec = extract_features(tone(), X)
    assert vec.shape == (len(ext),) and vec.dtype == np.float32
    assert {feature_group(c, X) for c in ext} == set(EXTENDED_GROUPS)
    assert {feature_group(c, P) for c in base}.isdisjoint(EXTENDED_GROUPS)
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
    n_fun = len(P.functionals)
    rows = sum(len(r) for r in X.descriptor_names())
    assert len(ext) == rows * n_fun + len(RHYTHM)
    # its own parameters: fewer contrast bands, fewer columns; descriptors' key unchanged
    fewer = Extended(contrast_bands=4)
    assert len(fewer.names()) == len(ext) - 2 * 2 * n_fun and fewer.cache_key() != X.cache_key()
    assert extract_features(tone(), fewer).shape == (len(fewer.names()),)


def test_one_clip_shares_the_analysis_between_extractors():
    clip = Clip(tone(), 16000)
    a = extract_features(clip.y, P)
    first = analysis(clip, P)
    assert np.array_equal(P.compute(clip), a) and analysis(clip, X) is first  # same analysis parameters
    assert analysis(clip, Extended(n_fft=1024)) is not first


def test_extended_groups_select_their_columns():
    names = feature_names(X)
    assert feature_group("spectral_contrast3_p10") == "spectral_shape"
    assert feature_group("spectral_centroid_delta_mean") == "spectral_deltas"
    assert feature_group("spectral_centroid_mean", P) == "spectral"  # default column, default group
    assert feature_group("hnr_delta_std") == "voice_quality"
    assert feature_group("f0_semitones_mean") == "prosody_dynamics"
    assert feature_group("energy_delta_mean") == "prosody_dynamics"
    assert feature_group("rhythm_pause_mean_s") == "rhythm"
    assert select_columns(X.column_groups(), ["rhythm"]) == list(RHYTHM)
    assert select_columns(X.column_groups(), ["all"]) == names
    assert select_columns(P.column_groups(), ["voice_quality"]) == []


def test_extended_params_validation():
    with pytest.raises(ValueError, match="sample_rate"):
        Extended(sample_rate=8000, f0_max=400)
    with pytest.raises(ValueError, match="n_fft"):
        Extended(n_fft=128, hop_length=64)
    with pytest.raises(ValueError, match="features: extended: .*contrast_bands"):
        FeatureSpec.from_config({"extended": {"contrast_bands": 8}})


@pytest.mark.parametrize(
    "signal",
    [np.zeros(16000, np.float32), tone(seconds=X.min_samples / X.sample_rate), tone(), _noise()],
    ids=["silence", "shortest", "tone", "noise"],
)
def test_extended_descriptors_are_finite_before_any_cleaning(signal):
    fr = analysis(Clip(signal, X.sample_rate), X)
    every, t_every, voiced, t_voiced, pairs, t_pairs, scalars = extended_descriptors(signal, fr, X)
    n_every, n_voiced, n_pairs = map(len, X.descriptor_names())
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

    from serflow.corpus.audio import load_audio

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


def test_every_schema_enum_equals_its_registry():
    import yaml
    from conftest import REPO

    from serflow.corpus.adapters import ADAPTERS
    from serflow.evaluation.protocols import PROTOCOLS
    from serflow.features import GROUPS, OPENSMILE_SETS, REGISTRY, SHARED_KEYS
    from serflow.features.frames import STREAMS
    from serflow.models.kinds import MODEL_KINDS
    from serflow.outputs.runs import METRICS

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    defs = schema["$defs"]
    group = {"$ref": "#/$defs/group"}
    assert schema["properties"]["feature_sets"]["additionalProperties"]["items"] == group
    assert defs["model"]["properties"]["feature_groups"]["items"]["items"] == group
    assert defs["group"]["enum"] == [*GROUPS, "all"]
    assert defs["model"]["properties"]["kind"]["enum"] == list(MODEL_KINDS)
    assert defs["dataset"]["properties"]["adapter"]["enum"] == list(ADAPTERS)
    assert defs["evaluation"]["properties"]["protocol"]["enum"] == ["auto", *PROTOCOLS]
    assert defs["evaluation"]["properties"]["metric"]["enum"] == list(METRICS)
    features = defs["features"]["properties"]
    assert set(features) == {*SHARED_KEYS, *REGISTRY, "opensmile"}
    assert features["opensmile"]["items"]["enum"] == list(OPENSMILE_SETS)
    assert defs["frames"]["properties"]["streams"]["items"]["enum"] == list(STREAMS)
    # each adapter's schema block holds exactly its own keys
    for name, adapter in ADAPTERS.items():
        block = defs[f"adapter_{name}"]
        keys = set(block.get("properties", {}))
        if "$ref" in block:
            keys |= set(defs[block["$ref"].rsplit("/", 1)[1]]["properties"])
        assert keys == set(adapter.keys), name
    # each extractor's block holds exactly its own parameters (a boolean: none but sample_rate)
    import dataclasses

    def resolve(block):
        return defs[block["$ref"].rsplit("/", 1)[1]] if "$ref" in block else block

    for name, cls in REGISTRY.items():
        params = {f.name for f in dataclasses.fields(cls)} - {"trim", "trim_threshold"}  # top level only
        blocks = [resolve(b) for b in features[name].get("oneOf", [features[name]])]
        blocks = [b for b in blocks if b.get("type") != "boolean"]
        if not blocks:
            assert params == {"sample_rate"}, name
            continue
        (block,) = blocks
        keys = set(block["properties"])
        if "$ref" in block:
            keys |= set(resolve(block)["properties"])
        assert keys == params, name
