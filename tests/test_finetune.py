"""The finetune model kind on a tiny randomly initialised wav2vec2 built here (no weights can be had)."""

import pickle

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="the finetune kind needs the deep extra: pip install -e '.[deep]'"
)
pytest.importorskip("transformers", reason="the finetune kind needs the deep extra: pip install -e '.[deep]'")

from test_ssl import tiny_checkpoint  # noqa: E402

from serflow.models.finetune import SpeechFineTuner, sample_lengths  # noqa: E402
from serflow.models.pipeline import fit_model  # noqa: E402

SR, N_FRAMES, FRAME = 16000, 25, 320  # 0.5-s rows
# float32 network, batches of another size in another process: equal to ~1e-6
FLOAT32_ATOL = 1e-5


def waves(n_per_speaker=4, n_speakers=6, seed=0):
    """(padded waveform rows, labels, speakers): a low or a high tone, of varying length."""
    rng = np.random.default_rng(seed)
    n = n_per_speaker * n_speakers
    y = np.arange(n) % 2
    x = np.zeros((n, N_FRAMES * FRAME))
    lengths = rng.integers(4000, N_FRAMES * FRAME + 1, n)
    for i in range(n):
        t = np.arange(lengths[i]) / SR
        x[i, : lengths[i]] = 0.3 * np.sin(2 * np.pi * (150.0 if y[i] == 0 else 900.0) * t)
        x[i, : lengths[i]] += 0.01 * rng.standard_normal(lengths[i])
    speakers = np.repeat([f"s{k}" for k in range(n_speakers)], n_per_speaker)
    return x, y, speakers, lengths


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


def small(checkpoint, **over):
    return {"checkpoint": checkpoint, "n_frames": N_FRAMES, "max_epochs": 4, "batch_size": 4, **over}


def test_fits_deterministically_with_its_encoder_frozen_where_asked(checkpoint):
    x, y, groups, lengths = waves()
    np.testing.assert_array_equal(sample_lengths(x), lengths)
    model = SpeechFineTuner(**small(checkpoint)).fit(x, y, groups)
    again = SpeechFineTuner(**small(checkpoint)).fit(x, y, groups)
    proba = model.predict_proba(x)
    assert proba.shape == (len(x), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(proba, again.predict_proba(x))  # the same computation
    assert 1 <= model.n_epochs_ <= 4 and all(np.isfinite(h["train_loss"]) for h in model.history_)
    fitted, held_out = model.split_
    assert len(held_out) and not set(groups[fitted]) & set(groups[held_out])  # grouped by speaker

    from transformers import AutoModel

    start = AutoModel.from_pretrained(checkpoint).state_dict()
    trained = model.net_.state_dict()
    prefix = model.net_.base_model_prefix

    def same(name):
        return torch.equal(start[name], trained[f"{prefix}.{name}"])

    assert all(same(k) for k in start if k.startswith("feature_extractor."))  # always frozen
    assert not all(same(k) for k in start if k.startswith("encoder.layers."))  # fine-tuned
    probe = SpeechFineTuner(**small(checkpoint, freeze_encoder=True, layer_weighting=True)).fit(x, y, groups)
    weights = probe.net_.state_dict()
    assert all(torch.equal(start[k], weights[f"{prefix}.{k}"]) for k in start)  # a probe: encoder untouched
    assert not torch.equal(weights["layer_weights"], torch.ones_like(weights["layer_weights"]) / 3)


def test_the_easy_task_is_learnt_and_the_pickle_predicts_the_same(checkpoint, tmp_path):
    x, y, groups, _ = waves()
    model = fit_model(
        "finetune", x, y, groups, params=small(checkpoint, max_epochs=8, head_learning_rate=3e-3)
    )
    losses = [h["train_loss"] for h in model[-1].history_]
    assert losses[-1] < losses[0], losses
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(model))
    assert b"torch" not in path.read_bytes()  # parameters as arrays, no PyTorch class
    loaded = pickle.loads(path.read_bytes())
    np.testing.assert_allclose(loaded.predict_proba(x), model.predict_proba(x), atol=FLOAT32_ATOL)


def test_wrong_input_names_the_setting(checkpoint, tmp_path):
    x, y, groups, _ = waves()
    with pytest.raises(ValueError, match="pad_frames equal to n_frames"):
        SpeechFineTuner(**small(checkpoint, n_frames=7)).fit(x, y, groups)
    with pytest.raises(ValueError, match="not a save_pretrained folder"):
        SpeechFineTuner(**small(str(tmp_path))).fit(x, y, groups)


@pytest.mark.slow
def test_a_finetune_run_beside_a_table_run_through_the_workflow(checkpoint, tmp_path):
    """Demo corpus: the finetune run gets folds, metrics, a report row, a submission and predict."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    import pandas as pd
    from conftest import run_snakemake

    config = {
        "datasets": [{"name": "demo", "adapter": "demo", "n_train": 30, "n_test": 6, "seed": 1}],
        "features": {"waveform": {"pad_frames": 50}},
        "feature_sets": {"audio": ["waveform"]},
        "feature_tables": ["prosody", "audio"],
        "models": {
            "ft": {"kind": "finetune", "params": small(checkpoint, n_frames=50, max_epochs=2)},
            "lr": {"kind": "logreg"},
        },
        "runs": [
            {"feature_sets": ["audio"], "models": ["ft"]},
            {"feature_sets": ["prosody"], "models": ["lr"]},
        ],
        "evaluation": {"n_bootstrap": 50},
    }
    run_snakemake(tmp_path, config)
    results = tmp_path / "results/demo"
    run = results / "runs/audio-ft"
    m = json.loads((run / "metrics.json").read_text())
    assert (
        m["protocol"] == "loso" and m["n_folds"] == m["n_speakers"] > 1 and m["model"]["kind"] == "finetune"
    )
    assert m["n_features"] == 50 * 320
    assert "audio-ft" in (tmp_path / "results/report.html").read_text()
    assert json.loads((results / "submissions.json").read_text())["runs"]["audio-ft"]["rows"] == 6

    expected = pd.read_parquet(run / "test_predictions.parquet")
    manifest = pd.read_parquet(results / "manifest.parquet").set_index("id")
    csv = tmp_path / "test.csv"
    pd.DataFrame({"path": manifest.loc[expected["id"], "path"]}).to_csv(csv, index=False)
    serflow = str(Path(sys.executable).with_name("serflow"))
    out = tmp_path / "out.csv"
    proc = subprocess.run(
        [serflow, "predict", str(run), str(csv), "-o", str(out)], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    got = pd.read_csv(out)
    columns = [c for c in got.columns if c.startswith("proba_")]
    np.testing.assert_allclose(got[columns].to_numpy(), expected[columns].to_numpy(), atol=FLOAT32_ATOL)
