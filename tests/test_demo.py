"""Tests for serflow.corpus.demo: the deterministic synthetic emotional-speech corpus."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from serflow.corpus.demo import EMOTIONS, demo_file_names, generate_demo_corpus, synthesize_clip

SR = 16000


def _written_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo_a")
    assert generate_demo_corpus(out) == out
    return out


@pytest.fixture(scope="module")
def train(corpus) -> pd.DataFrame:
    return pd.read_csv(corpus / "train.csv")


@pytest.fixture(scope="module")
def features(corpus, train) -> pd.DataFrame:
    """Simple handcrafted features per training clip, plus a voiced-frame median F0."""
    librosa = pytest.importorskip("librosa")
    rows = []
    for rel in train["path"]:
        y, sr = sf.read(corpus / rel, dtype="float32")
        f0 = librosa.yin(y, fmin=60, fmax=500, sr=sr, frame_length=1024, hop_length=160)
        rms = librosa.feature.rms(y=y, frame_length=1024, hop_length=160)[0]
        mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13, n_fft=512, hop_length=160)
        centroid = librosa.feature.spectral_centroid(y=y, sr=sr, n_fft=512, hop_length=160)[0]
        m = min(len(f0), len(rms))
        voiced = rms[:m] > 0.1 * rms.max()
        row = {
            "f0_mean": f0.mean(),
            "f0_std": f0.std(),
            "rms_mean": rms.mean(),
            "rms_std": rms.std(),
            "centroid_mean": centroid.mean(),
            "f0_voiced_median": float(np.median(f0[:m][voiced])),
        }
        row.update({f"mfcc{i}_mean": v for i, v in enumerate(mfcc.mean(axis=1))})
        row.update({f"mfcc{i}_std": v for i, v in enumerate(mfcc.std(axis=1))})
        rows.append(row)
    return pd.DataFrame(rows)


def test_written_files_match_demo_file_names(corpus):
    names = demo_file_names()
    assert len(names) == len(set(names)) == 3 + 120 + 24
    assert names[:3] == ["train.csv", "test.csv", "sample_submission.csv"]
    assert names[3] == "wav/train_0000.wav" and names[122] == "wav/train_0119.wav"
    assert names[123] == "wav/test_0000.wav" and names[-1] == "wav/test_0023.wav"
    assert _written_files(corpus) == set(names)


def test_demo_file_names_padding_and_empty_test():
    names = demo_file_names(n_train=12001, n_test=0)
    assert len(names) == 3 + 12001
    assert names[3] == "wav/train_00000.wav" and names[-1] == "wav/train_12000.wav"
    assert demo_file_names(2, 3)[3:] == [
        "wav/train_0000.wav",
        "wav/train_0001.wav",
        "wav/test_0000.wav",
        "wav/test_0001.wav",
        "wav/test_0002.wav",
    ]


def test_csv_layout(corpus, train):
    test = pd.read_csv(corpus / "test.csv")
    sub = pd.read_csv(corpus / "sample_submission.csv")
    assert list(train.columns) == ["id", "path", "label", "speaker"]
    assert list(test.columns) == ["id", "path", "speaker"]
    assert list(sub.columns) == ["id", "label"]
    assert len(train) == 120 and len(test) == 24 and len(sub) == 24
    assert list(train["id"]) == [f"train_{i:04d}" for i in range(120)]
    assert list(test["id"]) == [f"test_{i:04d}" for i in range(24)]
    assert list(train["path"]) == [f"wav/{i}.wav" for i in train["id"]]
    assert list(test["path"]) == [f"wav/{i}.wav" for i in test["id"]]
    assert list(sub["id"]) == list(test["id"])
    assert set(sub["label"]) == {sorted(EMOTIONS)[0]}


def test_labels_and_speakers_balanced(corpus, train):
    assert EMOTIONS == ("angry", "happy", "neutral", "sad")
    counts = train["label"].value_counts()
    assert set(counts.index) == set(EMOTIONS)
    assert counts.max() - counts.min() <= 1
    assert train["speaker"].value_counts().to_dict() == {f"spk{i}": 30 for i in range(1, 5)}
    per_speaker = pd.crosstab(train["speaker"], train["label"])
    assert per_speaker.shape == (4, 4)
    assert per_speaker.to_numpy().min() >= 7 and per_speaker.to_numpy().max() <= 8
    # Rows are shuffled: an unshuffled cyclic layout would never repeat a label
    # (or a speaker) on consecutive rows.
    labels, speakers = train["label"].to_numpy(), train["speaker"].to_numpy()
    assert (labels[:-1] == labels[1:]).any() and (speakers[:-1] == speakers[1:]).any()
    test = pd.read_csv(corpus / "test.csv")
    assert test["speaker"].value_counts().to_dict() == {f"spk{i}": 6 for i in range(1, 5)}


def test_audio_format_durations_and_levels(corpus):
    for rel in demo_file_names()[3:]:
        info = sf.info(corpus / rel)
        assert (info.samplerate, info.channels) == (SR, 1)
        assert (info.format, info.subtype) == ("WAV", "PCM_16")
        assert 1.0 * SR - 1 <= info.frames <= 3.0 * SR + 1
        pcm, _ = sf.read(corpus / rel, dtype="int16")
        peak = int(np.abs(pcm.astype(np.int32)).max())
        assert 0.03 * 32767 < peak <= 0.98 * 32767 + 1, rel  # audible, never clipped


def test_byte_identical_rerun(corpus, tmp_path):
    out = generate_demo_corpus(tmp_path / "again")
    names = demo_file_names()
    assert _written_files(out) == set(names)
    for rel in names:
        assert (out / rel).read_bytes() == (corpus / rel).read_bytes(), rel


def test_other_seed_gives_other_audio(corpus, tmp_path):
    a = generate_demo_corpus(tmp_path / "s0", n_train=6, n_test=2, seed=0)
    b = generate_demo_corpus(tmp_path / "s1", n_train=6, n_test=2, seed=1)
    for rel in demo_file_names(6, 2)[3:]:
        assert (a / rel).read_bytes() != (b / rel).read_bytes(), rel


def test_synthesize_clip_contract():
    for speaker in range(8):
        for emotion in EMOTIONS:
            y = synthesize_clip(emotion, speaker, np.random.default_rng(speaker), duration_range=(0.5, 0.7))
            assert y.dtype == np.float32 and y.ndim == 1
            assert 0.5 * SR - 1 <= y.size <= 0.7 * SR + 1
            assert np.isfinite(y).all() and np.abs(y).max() <= 1.0
            assert np.abs(y).max() > 0.01
    a = synthesize_clip("sad", 2, np.random.default_rng(7), sample_rate=8000)
    b = synthesize_clip("sad", 2, np.random.default_rng(7), sample_rate=8000)
    c = synthesize_clip("sad", 2, np.random.default_rng(8), sample_rate=8000)
    assert np.array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)
    assert 8000 <= a.size <= 24000


def test_small_custom_corpus(tmp_path):
    out = generate_demo_corpus(
        tmp_path / "small", n_train=10, n_test=0, n_speakers=2, sample_rate=8000, duration_range=(0.5, 0.6)
    )
    train = pd.read_csv(out / "train.csv")
    assert set(train["speaker"]) == {"spk1", "spk2"}
    assert train["label"].value_counts().max() - train["label"].value_counts().min() <= 1
    assert len(pd.read_csv(out / "test.csv")) == 0
    assert len(pd.read_csv(out / "sample_submission.csv")) == 0
    assert _written_files(out) == set(demo_file_names(10, 0))
    for rel in train["path"]:
        info = sf.info(out / rel)
        assert info.samplerate == 8000 and 0.5 * 8000 - 1 <= info.frames <= 0.6 * 8000 + 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_speakers": 0},
        {"n_speakers": 65},
        {"n_emotions": 9},
        {"n_train": 0},
        {"n_test": -1},
        {"n_train": 2.5},
        {"sample_rate": 4000},
        {"duration_range": (2.0, 1.0)},
        {"duration_range": (0.0, 1.0)},
        {"duration_range": (1.0, math.inf)},
        {"duration_range": (1.0,)},
        {"duration_range": "long"},
        {"seed": -1},
        {"seed": None},
    ],
)
def test_generate_rejects_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate_demo_corpus(tmp_path / "bad", **kwargs)
    assert not (tmp_path / "bad").exists()


def test_synthesize_rejects_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="emotion"):
        synthesize_clip("bored", 0, rng)
    with pytest.raises(ValueError, match="speaker"):
        synthesize_clip("sad", 64, rng)
    with pytest.raises(ValueError, match="sample_rate"):
        synthesize_clip("sad", 0, rng, sample_rate=100)
    with pytest.raises(ValueError, match="duration_range"):
        synthesize_clip("sad", 0, rng, duration_range=(3.0, 1.0))
    with pytest.raises(TypeError):
        synthesize_clip("sad", 0, 0)


def test_speaker_pitch_differs_as_designed(train, features):
    median_f0 = features.groupby(train["speaker"])["f0_voiced_median"].median()
    low, high = median_f0[["spk1", "spk2"]], median_f0[["spk3", "spk4"]]
    assert low.max() < 170 < high.min(), median_f0.to_dict()
    assert high.min() > 1.4 * low.max(), median_f0.to_dict()
    assert median_f0["spk1"] < median_f0["spk2"] and median_f0["spk3"] < median_f0["spk4"]


def test_emotion_effects_have_the_designed_direction(train, features):
    by_label = features.groupby(train["label"]).median()
    rms = by_label["rms_mean"]
    assert rms["angry"] > rms["happy"] > rms["neutral"] > rms["sad"], rms.to_dict()
    centroid = by_label["centroid_mean"]
    assert centroid["angry"] > centroid["sad"], centroid.to_dict()


def test_emotions_separable_but_not_trivially(train, features):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = features.drop(columns=["f0_voiced_median"]).to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    pred = cross_val_predict(model, X, train["label"], groups=train["speaker"], cv=LeaveOneGroupOut())
    uar = balanced_accuracy_score(train["label"], pred)
    assert 0.45 < uar < 0.98, uar


def test_eight_emotions_and_many_speakers(tmp_path):
    """A RAVDESS-shaped corpus (8 emotions, 24 speakers) for the scale benchmarks."""
    from serflow.corpus.demo import MORE_EMOTIONS, planned_clips

    out = generate_demo_corpus(
        tmp_path / "big", n_train=48, n_test=0, n_speakers=24, n_emotions=8, duration_range=(0.3, 0.4)
    )
    train = pd.read_csv(out / "train.csv")
    assert set(train["label"]) == set(EMOTIONS + MORE_EMOTIONS) and train["speaker"].nunique() == 24
    assert (train.groupby("label").size() == 6).all()
    planned = planned_clips(n_train=48, n_test=0, n_speakers=24, n_emotions=8)
    assert [(c[0], c[2], c[3]) for c in planned] == list(
        train[["id", "label", "speaker"]].itertuples(index=False, name=None)
    )
