"""The cnn model kind on padded frame-level features: learning, folds, padding, saving."""

import pickle

import joblib
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the cnn kind needs the deep extra: pip install -e '.[deep]'")

from serflow.evaluation.protocols import make_folds  # noqa: E402
from serflow.models.cnn import LogMelCNN, frame_lengths  # noqa: E402
from serflow.models.pipeline import fit_model  # noqa: E402

N_DIMS, N_FRAMES = 12, 40
SMALL = {"n_frames": N_FRAMES, "channels": [8, 16], "max_epochs": 12, "patience": 4}


def clips(n_per_speaker=12, n_speakers=6, seed=0):
    """(flattened padded 'log-mel' rows, labels, speakers): the label raises one band."""
    rng = np.random.default_rng(seed)
    n = n_per_speaker * n_speakers
    y = np.tile(np.arange(3), n // 3 + 1)[:n]
    cube = rng.normal(size=(n, N_DIMS, N_FRAMES)) - 30.0
    lengths = rng.integers(15, N_FRAMES + 1, n)
    for i in range(n):
        cube[i, 4 * y[i] : 4 * y[i] + 4] += 4.0
        cube[i, :, lengths[i] :] = 0.0
    speakers = np.repeat([f"s{k}" for k in range(n_speakers)], n_per_speaker)
    return cube.reshape(n, -1), y, speakers, lengths


def test_frame_lengths_and_padding_stay_zero_after_standardising():
    x, y, _, lengths = clips()
    np.testing.assert_array_equal(frame_lengths(x, N_FRAMES), lengths)
    model = LogMelCNN(**{**SMALL, "max_epochs": 1}).fit(x, y)
    cube, got = model._cube(torch, x)
    np.testing.assert_array_equal(got.numpy(), lengths)
    for i in range(len(x)):
        assert torch.all(cube[i, :, lengths[i] :] == 0)
        assert torch.any(cube[i, :, : lengths[i]] != 0)


def test_learns_and_refits_to_the_same_probabilities():
    x, y, groups, _ = clips()
    folds = make_folds(y, groups, "loso")
    correct = 0
    for train, test in folds[:2]:
        first = fit_model("cnn", x[train], y[train], groups[train], params=SMALL)
        again = fit_model("cnn", x[train], y[train], groups[train], params=SMALL)
        proba = first.predict_proba(x[test])
        np.testing.assert_array_equal(proba, again.predict_proba(x[test]))  # same computation
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)  # float32 softmax
        correct += int((proba.argmax(axis=1) == y[test]).sum())
    assert correct / sum(len(t) for _, t in folds[:2]) > 0.8  # chance is 1/3


def test_a_fold_sees_its_training_clips_only():
    x, y, groups, lengths = clips()
    x[groups == "s0"] += np.where(x[groups == "s0"] != 0, 100.0, 0.0)  # the held-out speaker is far off
    train, test = next((tr, te) for tr, te in make_folds(y, groups, "loso") if set(groups[te]) == {"s0"})
    pipeline = fit_model("cnn", x[train], y[train], groups[train], params=SMALL)
    model = pipeline.named_steps["model"]
    assert pipeline.named_steps["scale"] == "passthrough"  # the network standardises itself
    fit_rows, val_rows = model.split_
    # early stopping holds out whole training speakers, never a test clip
    assert not set(groups[train][fit_rows]) & set(groups[train][val_rows])
    assert len(val_rows) and "s0" not in set(groups[train])
    cube = x[train][fit_rows].reshape(len(fit_rows), N_DIMS, N_FRAMES)
    real = np.arange(N_FRAMES)[None, :] < lengths[train][fit_rows][:, None]
    frames = cube.transpose(0, 2, 1)[real]
    np.testing.assert_allclose(model.mean_, frames.mean(axis=0), rtol=1e-9)
    assert np.all(model.mean_ < 0)  # s0's frames (+100) never reached it


def test_saved_model_holds_no_torch_class_and_predicts_the_same(tmp_path):
    x, y, groups, _ = clips()
    model = fit_model("cnn", x, y, groups, params={**SMALL, "max_epochs": 2})
    expected = model.predict_proba(x)
    assert b"torch" not in pickle.dumps(model)
    joblib.dump(model, tmp_path / "m.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "m.joblib").predict_proba(x), expected)


def test_wrong_input_shape_names_the_setting():
    x, y, _, _ = clips()
    with pytest.raises(ValueError, match="pad_frames equal to n_frames"):
        LogMelCNN(**{**SMALL, "n_frames": 7}).fit(x, y)
    with pytest.raises(ValueError, match="n_frames must be"):
        LogMelCNN().fit(x, y)


# float32 network: another process may batch the clips differently, and oneDNN's float32
# convolutions then round differently (~1e-7); a wrong input or model moves them far more.
FLOAT32_ATOL = 1e-5


@pytest.mark.slow
def test_a_cnn_run_beside_a_table_run_through_the_whole_workflow(tmp_path):
    """Demo corpus: the cnn run gets folds, metrics, report row, submission, predict and serve."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    import pandas as pd
    from conftest import run_snakemake
    from test_serve import Server, upload

    config = {
        "datasets": [{"name": "demo", "adapter": "demo", "n_train": 40, "n_test": 8, "seed": 1}],
        "features": {"frames": {"streams": ["mel"], "pad_frames": 150}},
        "feature_sets": {"logmel": ["frames_mel"]},
        "feature_tables": ["prosody", "logmel"],
        "models": {"cnn": {"kind": "cnn", "params": {**SMALL, "n_frames": 150}}, "lr": {"kind": "logreg"}},
        "runs": [
            {"feature_sets": ["logmel"], "models": ["cnn"]},
            {"feature_sets": ["prosody"], "models": ["lr"]},
        ],
        "evaluation": {"n_bootstrap": 100},
    }
    run_snakemake(tmp_path, config)
    results = tmp_path / "results/demo"
    run = results / "runs/logmel-cnn"
    metrics = (run / "metrics.json").read_bytes()
    m = json.loads(metrics)
    assert m["protocol"] == "loso" and m["n_folds"] == m["n_speakers"] > 1 and 0 <= m["uar"] <= 1
    assert m["model"]["kind"] == "cnn"
    assert "logmel-cnn" in (tmp_path / "results/report.html").read_text()
    assert json.loads((results / "submissions.json").read_text())["runs"]["logmel-cnn"]["rows"] == 8

    run_snakemake(tmp_path, config, "--forcerun", "train_folds")  # refit every fold
    assert (run / "metrics.json").read_bytes() == metrics  # same computation, same bytes

    expected = pd.read_parquet(run / "test_predictions.parquet")
    manifest = pd.read_parquet(results / "manifest.parquet").set_index("id")
    paths = manifest.loc[expected["id"], "path"]
    csv = tmp_path / "test.csv"
    pd.DataFrame({"path": paths}).to_csv(csv, index=False)
    serflow = str(Path(sys.executable).with_name("serflow"))
    proc = subprocess.run(
        [serflow, "predict", str(run), str(csv), "-o", str(tmp_path / "out.csv"), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    got = pd.read_csv(tmp_path / "out.csv")
    columns = [c for c in got.columns if c.startswith("proba_")]
    np.testing.assert_allclose(got[columns].to_numpy(), expected[columns].to_numpy(), atol=FLOAT32_ATOL)

    server = Server(run)
    try:
        clip = tmp_path / paths.iloc[0]
        body = server.post([upload(clip)]).json()
    finally:
        server.stop()
    want = expected.iloc[0]
    for label, p in body["probabilities"].items():
        assert abs(p - want[f"proba_{label}"]) < FLOAT32_ATOL, label
