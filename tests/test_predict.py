"""``serflow predict`` through its real command line, on models trained by the real workflow."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import PROBA_ATOL, cache_files, run_snakemake, tone, write_wav

from serflow.models.training import load_table, predict

SERFLOW = str(Path(sys.executable).with_name("serflow"))
HELD_OUT = "10"  # an EmoDB speaker the models never saw


def serflow(*args, cwd=None):
    return subprocess.run([SERFLOW, *map(str, args)], capture_output=True, text=True, cwd=cwd)


def held_out_clips(emodb, dest: Path, n=6) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(p, dest / p.name)) for p in sorted(emodb.glob(f"{HELD_OUT}*.wav"))[:n]]


def mixed_folder(emodb, dest: Path) -> Path:
    """Six good clips (one in a subfolder), four broken ones and a text file that is not audio."""
    good = held_out_clips(emodb, dest)
    (dest / "sub").mkdir()
    good[-1].rename(dest / "sub" / good[-1].name)
    (dest / "not_audio.wav").write_text("this is text, not audio\n")
    (dest / "empty.wav").write_bytes(b"")
    (dest / "truncated.wav").write_bytes(good[0].read_bytes()[:3000])
    write_wav(dest / "short.wav", tone(seconds=0.005))
    (dest / "notes.txt").write_text("not listed: not an audio extension\n")
    return dest


def proba_columns(table):
    return [c for c in table.columns if c.startswith("proba_")]


def workflow_outputs(emodb_models):
    """(the workflow's `all` feature table, its manifest indexed by id) of the trained models."""
    workdir = emodb_models.parents[2]
    table, _ = load_table(workdir / "results/emodb3/features/all.parquet")
    return table, pd.read_parquet(workdir / "results/emodb3/manifest.parquet").set_index("id")


def test_help_on_every_subcommand():
    for args in (["--help"], ["predict", "--help"], ["serve", "--help"], ["check", "--help"]):
        proc = serflow(*args)
        assert proc.returncode == 0 and "usage: serflow" in proc.stdout
        assert "``" not in proc.stdout  # no docstring markup
    top = serflow("--help").stdout
    assert all(f"    {command} " in top for command in ("predict", "serve", "check")), top


@pytest.mark.emodb
def test_folder_mixing_good_and_broken_files(emodb, emodb_models, tmp_path):
    folder = mixed_folder(emodb, tmp_path / "clips")
    out = tmp_path / "predictions.csv"
    proc = serflow("predict", emodb_models / "all-logreg", folder, "-o", out, "--jobs", 2)
    assert proc.returncode == 0, proc.stderr
    assert f"model card: {emodb_models / 'all-logreg' / 'model_card.md'}" in proc.stderr
    assert "6 of 10 clips predicted" in proc.stderr
    table = pd.read_csv(out, keep_default_na=False)
    assert len(table) == 10 and not table["path"].str.endswith("notes.txt").any()
    errors = dict(zip(table["path"].map(lambda p: Path(p).name), table["error"]))
    assert errors["not_audio.wav"].startswith("cannot decode audio")
    assert errors["empty.wav"] == "empty file (0 bytes)"
    assert errors["truncated.wav"].startswith("truncated WAV")
    assert errors["short.wav"].startswith("shorter than one analysis frame")
    good = table[table["error"] == ""]
    assert len(good) == 6 and any("/sub/" in p for p in good["path"])
    proba = good[proba_columns(good)].astype(float).to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    labels = [c.removeprefix("proba_") for c in proba_columns(good)]
    assert list(good["prediction"]) == [labels[i] for i in proba.argmax(axis=1)]
    # Same output twice, byte for byte, with another process count.
    again = tmp_path / "again.csv"
    assert serflow("predict", emodb_models / "all-logreg", folder, "-o", again, "--jobs", 1).returncode == 0
    assert again.read_bytes() == out.read_bytes()


@pytest.mark.emodb
def test_rows_equal_the_workflow_features_and_reuse_its_cache(emodb_models, tmp_path):
    """Predicting training clips gives the model's probabilities on the workflow's table (to round-off)."""
    run = emodb_models / "all-logreg"
    workdir = emodb_models.parents[2]
    table, manifest = workflow_outputs(emodb_models)
    ids = list(table["id"][:12])
    csv = tmp_path / "clips.csv"
    pd.DataFrame({"path": [manifest.loc[i, "path"] for i in ids]}).to_csv(csv, index=False)
    before = cache_files(workdir / "cache")
    fresh, cached = tmp_path / "fresh.csv", tmp_path / "cached.csv"
    assert serflow("predict", run, csv, "-o", fresh, "--no-cache").returncode == 0
    assert serflow("predict", run, csv, "-o", cached).returncode == 0  # the model's training cache
    assert cache_files(workdir / "cache") == before  # every clip was found there
    expected = predict(joblib.load(run / "model.joblib"), table[table["id"].isin(ids)])
    for path in (fresh, cached):
        got = pd.read_csv(path)
        np.testing.assert_allclose(
            got[proba_columns(got)].to_numpy(),
            expected[proba_columns(got)].to_numpy(),
            rtol=0,
            atol=PROBA_ATOL,
        )
        assert list(got["prediction"]) == list(expected["prediction"])


@pytest.mark.emodb
def test_speaker_normalised_model(emodb, emodb_models, tmp_path):
    run = emodb_models / "all-logreg_spk"
    clips = held_out_clips(emodb, tmp_path / "clips", n=7)
    out = tmp_path / "out.csv"
    # No speaker information: refused before any work, with the two ways out.
    proc = serflow("predict", run, tmp_path / "clips", "-o", out)
    assert proc.returncode == 2 and not out.exists()
    assert "speaker column" in proc.stderr and "--speaker-norm global" in proc.stderr
    # Global scaling, said in every row.
    proc = serflow("predict", run, tmp_path / "clips", "-o", out, "--speaker-norm", "global")
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out, keep_default_na=False)
    assert (table["normalisation"] == "global scaling: no speaker given").all() and (
        table["error"] == ""
    ).all()
    # A speaker column: speaker 10 (5 clips) is normalised per speaker, 'x' (2 clips) is refused.
    csv = tmp_path / "clips.csv"
    speakers = [HELD_OUT] * 5 + ["x"] * 2
    pd.DataFrame({"path": [f"clips/{c.name}" for c in clips], "speaker": speakers}).to_csv(csv, index=False)
    proc = serflow("predict", run, csv, "-o", out)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out, keep_default_na=False, dtype={"speaker": str})
    assert list(table["speaker"]) == speakers
    spk = table[table["speaker"] == HELD_OUT]
    assert (spk["normalisation"] == "per speaker (5 clips)").all() and (spk["error"] == "").all()
    refused = table[table["speaker"] == "x"]
    assert (refused["prediction"] == "").all()
    assert refused["error"].str.contains("speaker 'x' has 2 clip\\(s\\), fewer than 5").all()


@pytest.mark.emodb
def test_per_speaker_normalisation_matches_the_workflow(emodb_models, tmp_path):
    """All of a training speaker's clips, named as one speaker: the probabilities of the workflow's model."""
    run = emodb_models / "all-logreg_spk"
    table, manifest = workflow_outputs(emodb_models)
    one = table[table["speaker"] == "08"]
    csv = tmp_path / "speaker08.csv"
    pd.DataFrame({"path": manifest.loc[one["id"], "path"], "speaker": "08"}).to_csv(csv, index=False)
    out = tmp_path / "out.csv"
    assert serflow("predict", run, csv, "-o", out).returncode == 0
    got = pd.read_csv(out)
    expected = predict(joblib.load(run / "model.joblib"), one)
    np.testing.assert_allclose(
        got[proba_columns(got)].to_numpy(), expected[proba_columns(got)].to_numpy(), rtol=0, atol=PROBA_ATOL
    )
    assert list(got["prediction"]) == list(expected["prediction"])


@pytest.mark.emodb
def test_nothing_predictable_exits_non_zero(emodb_models, tmp_path):
    (tmp_path / "a.wav").write_text("text")
    proc = serflow(
        "predict",
        emodb_models / "all-logreg",
        tmp_path / "a.wav",
        tmp_path / "missing.wav",
        "-o",
        tmp_path / "o.csv",
    )
    assert proc.returncode == 1
    table = pd.read_csv(tmp_path / "o.csv", keep_default_na=False)
    assert list(table["error"].str[:13]) == ["cannot decode", "file not foun"]
    proc = serflow("predict", tmp_path, tmp_path / "a.wav")
    assert proc.returncode == 2 and "no such model file" in proc.stderr


def test_demo_best_model_reproduces_its_test_predictions(tmp_path):
    """On the demo corpus: the best run's model predicts the test clips as the workflow did."""
    config = {
        "datasets": [{"name": "demo", "adapter": "demo", "n_train": 40, "n_test": 8, "seed": 3}],
        "runs": [{"feature_sets": ["prosody", "all"], "models": ["majority", "logreg"]}],
        "evaluation": {"n_bootstrap": 100},
    }
    run_snakemake(tmp_path, config)
    best = json.loads((tmp_path / "results/demo/submissions.json").read_text())["best"]
    run = tmp_path / "results/demo/runs" / best
    card = (run / "model_card.md").read_text()
    assert "## Limits" in card and "Probability columns, in order" in card
    manifest = pd.read_parquet(tmp_path / "results/demo/manifest.parquet").set_index("id")
    expected = pd.read_parquet(run / "test_predictions.parquet")
    csv = tmp_path / "test.csv"
    pd.DataFrame({"path": manifest.loc[expected["id"], "path"]}).to_csv(csv, index=False)
    out = tmp_path / "out.csv"
    proc = serflow("predict", run, csv, "-o", out, "--no-cache", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = pd.read_csv(out)
    assert list(got["prediction"]) == list(expected["prediction"])
    np.testing.assert_allclose(
        got[proba_columns(got)].to_numpy(), expected[proba_columns(got)].to_numpy(), rtol=0, atol=PROBA_ATOL
    )


def test_a_model_saved_under_moved_modules_gets_a_clear_error(tmp_path, monkeypatch):
    import types

    from serflow.apps.predict import ModelError, TrainedModel

    gone = types.ModuleType("serflow.gone")
    gone.Old = type("Old", (), {"__module__": "serflow.gone"})
    monkeypatch.setitem(sys.modules, "serflow.gone", gone)
    joblib.dump({"model": gone.Old(), "features": {}}, tmp_path / "model.joblib")
    monkeypatch.delitem(sys.modules, "serflow.gone")
    with pytest.raises(ModelError, match=r"model\.joblib: saved by an older serflow .*retrain it"):
        TrainedModel.load(tmp_path)
