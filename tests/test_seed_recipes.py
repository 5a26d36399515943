"""The seed recipes reproduce the write-ups' own feature vectors (seed_reference.py) on EmoDB clips."""

import numpy as np
import pytest
import yaml
from conftest import REPO
from seed_reference import seed000_features, seed001_features, seed003_features

from serflow.corpus.audio import load_audio
from serflow.features import Clip, FeatureSpec, Frames, select_columns
from serflow.features.frames import read_sequences

RECIPES = REPO / "config" / "recipes"


def recipe(name):
    cfg = yaml.safe_load((RECIPES / f"{name}.yaml").read_text())
    return cfg, FeatureSpec.from_config(cfg["features"])


def table_row(spec, groups, y):
    """The feature-set columns the workflow's table would hold for one clip, by column name."""
    clip = Clip(y, spec.sample_rate)
    row = {}
    for name in spec.needs(groups):
        ext = spec[name]
        values = dict(zip(ext.names(), ext.to_row(ext.compute(clip))))
        row.update({c: values[c] for c in select_columns(ext.column_groups(), groups)})
    return row


@pytest.fixture(scope="module")
def clips(emodb):
    return sorted(emodb.glob("*.wav"))[::180][:3]


def test_seed000_spectrogram_mel_and_mfcc_means(clips):
    cfg, spec = recipe("seed000")
    assert spec.names == ["frames"] and spec.sample_rate == 22050
    for path in clips:
        y = load_audio(path, 22050)
        ref = seed000_features(y)
        for fs, key, n in (("seed000_spectrogram", "spectrogram", 257), ("seed000_mel", "mel", 128),
                           ("seed000_mfcc", "mfcc", 20)):  # fmt: skip
            row = table_row(spec, cfg["feature_sets"][fs], y)
            assert len(row) == n == ref[key].size
            np.testing.assert_allclose(list(row.values()), ref[key], rtol=1e-4, atol=1e-4)


def test_seed001_l2_normalised_power_mel_means(clips):
    cfg, spec = recipe("seed001")
    assert cfg["models"]["mlp_seed001"]["scale"] is False
    for path in clips:
        y = load_audio(path, 16000)
        row = table_row(spec, cfg["feature_sets"]["seed001_mel"], y)
        assert len(row) == 128
        np.testing.assert_allclose(list(row.values()), seed001_features(y), rtol=1e-4, atol=1e-7)
        assert np.linalg.norm(list(row.values())) == pytest.approx(1.0, abs=1e-5)


def test_seed003_padded_flattened_sequences(clips):
    cfg, spec = recipe("seed003")
    assert spec.names == ["frames", "signal"]
    for path in clips:
        y = load_audio(path, 22050)
        row = table_row(spec, cfg["feature_sets"]["seed003"], y)
        assert len(row) == 40002
        ref = seed003_features(y)
        pitch, energy_tempo, mfcc = ref[:1000], ref[1000:1002], ref[1002:]
        ours = np.array(list(row.values()))
        np.testing.assert_allclose(ours[:1000], pitch, rtol=1e-5)
        np.testing.assert_allclose(ours[1000:40000], mfcc, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(ours[40000:], energy_tempo, rtol=1e-5)
        n_frames = 1 + len(y) // 512
        assert (ours[n_frames:1000] == 0).all() and ours[n_frames - 1] > 0  # zero padding after the clip


def test_sequences_come_back_as_a_padded_batch(tmp_path, clips):
    from serflow.corpus.audio import checksum_bytes
    from serflow.features.extraction import extract_shard

    ext = Frames(streams=("mel", "mfcc"), n_mels=32, n_mfcc=13)
    sums = [checksum_bytes(p.read_bytes()) for p in clips]
    extract_shard(ext, [p.stem for p in clips], [str(p) for p in clips], sums, tmp_path)
    batch, lengths = read_sequences(ext, tmp_path, sums)
    expected = [1 + len(load_audio(p, 16000)) // ext.hop_length for p in clips]
    assert lengths.tolist() == expected and batch.shape == (3, max(expected), 45)
    for i, n in enumerate(lengths):
        full = ext.compute(Clip(load_audio(clips[i], 16000), 16000))
        np.testing.assert_array_equal(batch[i, :n], full)
        assert (batch[i, n:] == 0).all()
    mfcc_only, _ = read_sequences(ext, tmp_path, sums, streams=["mfcc"])
    np.testing.assert_array_equal(mfcc_only, batch[:, :, 32:])
    with pytest.raises(KeyError, match="not in the 'frames' cache"):
        read_sequences(ext, tmp_path, ["0" * 32])
