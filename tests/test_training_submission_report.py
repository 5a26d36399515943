"""Unit tests: one run on a feature table, submissions in a competition's format, the report."""

import json

import numpy as np
import pandas as pd
import pytest

from serflow.models.training import dumps_metrics, evaluate_run, fit_final, importance_table, predict
from serflow.outputs.report import dataset_section, render_report
from serflow.outputs.runs import best_run, choose_best
from serflow.outputs.submission import label_coding, make_submission, write_submissions


def feature_table(n_per=12, speakers=("a", "b", "c"), labels=("calm", "loud"), n_test=4, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for spk_i, spk in enumerate(speakers):
        for lab_i, lab in enumerate(labels):
            for k in range(n_per // len(labels)):
                rows.append((f"{spk}_{lab}_{k}", lab, spk, "train", lab_i * 2.0 + spk_i * 0.5))
    for k in range(n_test):
        rows.append((f"test_{k}", None, speakers[0], "test", (k % 2) * 2.0))
    table = pd.DataFrame(rows, columns=["id", "label", "speaker", "split", "centre"])
    for j in range(4):
        table[f"f{j}"] = (table["centre"] + rng.normal(scale=0.7, size=len(table))).astype("float32")
    return table.drop(columns="centre"), [f"f{j}" for j in range(4)]


def test_evaluate_run_loso_metrics_and_predictions():
    table, cols = feature_table()
    model = {"kind": "logreg", "params": {"C": 1.0}, "grid": {"C": [0.1, 10.0]}, "class_weight": "balanced"}
    predictions, metrics = evaluate_run(table, cols, model, {"n_bootstrap": 100})
    assert metrics["protocol"] == "loso" and metrics["speaker_independent"] is True
    assert metrics["n_folds"] == 3 and metrics["n_clips"] == 36 and metrics["n_features"] == 4
    assert len(predictions) == 36 and not predictions["id"].str.startswith("test").any()
    for fold in metrics["folds"]:
        assert len(fold["test_speakers"]) == 1 and fold["params"]["C"] in (0.1, 10.0)
        assert set(predictions.loc[predictions.fold == fold["fold"], "speaker"]) == set(fold["test_speakers"])
    assert metrics["uar"] > 0.8 and set(metrics["per_speaker"]) == {"a", "b", "c"}
    assert np.allclose(predictions[["proba_calm", "proba_loud"]].sum(axis=1), 1.0)
    again = evaluate_run(table, cols, model, {"n_bootstrap": 100})[1]
    assert dumps_metrics(again) == dumps_metrics(metrics)


def test_speaker_dependent_protocols_are_labelled():
    table, cols = feature_table()
    for protocol in ("stratified_kfold", "random_split"):
        _, metrics = evaluate_run(table, cols, {"kind": "svc"}, {"protocol": protocol, "n_bootstrap": 50})
        assert metrics["protocol"] == protocol and metrics["speaker_independent"] is False
    no_speakers = table.assign(speaker=None)
    _, metrics = evaluate_run(no_speakers, cols, {"kind": "svc"}, {"n_bootstrap": 50})
    assert metrics["protocol"] == "stratified_kfold" and metrics["n_speakers"] is None
    with pytest.raises(ValueError, match="speaker of every clip"):
        evaluate_run(no_speakers, cols, {"kind": "svc"}, {"protocol": "loso"})


def test_final_model_predicts_the_unlabelled_clips():
    table, cols = feature_table()
    bundle, test = fit_final(table, cols, {"kind": "svc", "params": {"C": 1.0}}, info={"feature_set": "toy"})
    assert bundle["labels"] == ["calm", "loud"] and bundle["feature_names"] == cols
    assert bundle["versions"]["scikit-learn"] and bundle["feature_set"] == "toy"
    assert test["id"].tolist() == [f"test_{k}" for k in range(4)]
    assert test["prediction"].tolist() == ["calm", "loud", "calm", "loud"]
    with pytest.raises(ValueError, match="lacks 1 column"):
        predict(bundle, table.drop(columns="f2"))


def test_submission_keeps_sample_format_and_competition_coding():
    sample = pd.DataFrame(
        {"id": ["t3", "t1", "t2", "gone"], "label": ["0", "0", "0", "0"], "extra": list("wxyz")}
    )
    preds = pd.DataFrame({"id": ["t1", "t2", "t3"], "prediction": ["angry", "sad", "fear"]})
    coding = label_coding({"0": "angry", "1": "fear", "2": "sad"})
    sub, missing = make_submission(preds, sample, "id", "label", coding, fallback="0")
    assert list(sub.columns) == ["id", "label", "extra"] and sub["id"].tolist() == ["t3", "t1", "t2", "gone"]
    assert sub["label"].tolist() == ["1", "0", "2", "0"] and missing == ["gone"]
    assert label_coding({"a": "x", "b": "x"}) == {}  # merging maps cannot be inverted
    plain, missing = make_submission(preds, None, "file_name", "emotion")
    assert list(plain.columns) == ["file_name", "emotion"] and len(plain) == 3 and not missing
    runs = {"a-svc": {"uar": 0.5}, "b-svc": {"uar": 0.7}, "c-svc": {"uar": 0.7}}
    assert best_run(runs) == "b-svc"


def test_write_submissions_copies_the_best_run(tmp_path):
    manifest = pd.DataFrame({"label": ["x", "y", "y", None]})
    manifest.to_parquet(tmp_path / "manifest.parquet")
    runs, outputs = {}, {}
    for run, uar, pred in (("p-svc", 0.4, "x"), ("p-rf", 0.6, "y")):
        (tmp_path / f"{run}.json").write_text(json.dumps({"uar": uar}))
        pd.DataFrame({"id": ["t0"], "prediction": [pred]}).to_parquet(tmp_path / f"{run}.parquet")
        runs[run] = (tmp_path / f"{run}.json", tmp_path / f"{run}.parquet")
        outputs[run] = tmp_path / f"{run}.csv"
    pd.DataFrame({"id": ["t0", "t9"], "label": ["", ""]}).to_csv(tmp_path / "sample.csv", index=False)
    summary = write_submissions(
        tmp_path / "manifest.parquet",
        runs,
        outputs,
        tmp_path / "best.csv",
        tmp_path / "summary.json",
        {"name": "d"},
        tmp_path / "sample.csv",
    )
    assert summary["best"] == "p-rf" and summary["fallback_label"] == "y"
    assert summary["best_reason"] == "highest cross-validated uar"
    assert (tmp_path / "best.csv").read_text() == "id,label\nt0,y\nt9,y\n"
    assert summary["runs"]["p-svc"]["missing"] == ["t9"]
    (tmp_path / "p-svc.json").write_text(json.dumps({"uar": 0.4, "model": {"domain_norm": True}}))
    args = (tmp_path / "manifest.parquet", runs, outputs, tmp_path / "best.csv", tmp_path / "summary.json")
    summary = write_submissions(*args, {"name": "d"}, test_split={"distinct": True, "p_value": 0.002})
    assert summary["best"] == "p-svc" and summary["best_normalisation"] == "test domain"
    assert (tmp_path / "best.csv").read_text() == "id,label\nt0,x\n"


def test_a_distinct_test_split_chooses_among_domain_norm_runs():
    runs = {
        "all-logreg": {"uar": 0.74, "model": {"kind": "logreg"}},
        "all-logreg_dn": {"uar": 0.73, "model": {"kind": "logreg", "domain_norm": True}},
        "prosody-svc_dn": {"uar": 0.60, "model": {"kind": "svc", "domain_norm": True}},
    }
    distinct = {"distinct": True, "p_value": 0.001}
    assert choose_best(runs) == ("all-logreg", "highest cross-validated uar")
    assert choose_best(runs, test_split={"distinct": False, "p_value": 0.4})[0] == "all-logreg"
    best, reason = choose_best(runs, test_split=distinct)
    assert best == "all-logreg_dn" and "among the 2 domain_norm run(s)" in reason and "p = 0.001" in reason
    assert choose_best(runs, test_split=distinct, prefer_domain_norm="never")[0] == "all-logreg"
    plain = {k: v for k, v in runs.items() if "_dn" not in k}
    assert choose_best(plain, test_split=distinct)[0] == "all-logreg"  # nothing to prefer
    with pytest.raises(ValueError, match="auto or never"):
        choose_best(runs, prefer_domain_norm="always")


def test_report_section_from_workflow_files(tmp_path):
    """dataset_section reads the workflow's outputs; the page escapes every data string."""
    from conftest import tone, write_wav

    evil = "<script>alert(1)</script>"
    wavs = [write_wav(tmp_path / f"{i}.wav", tone(150.0 + 50 * i)) for i in range(3)]
    manifest = pd.DataFrame(
        {
            "id": ["1", "2", "3"],
            "path": [str(w) for w in wavs],
            "label": [evil, "calm", None],
            "speaker": ["s&1", "s2", None],
            "split": ["train", "train", "test"],
            "duration_s": [1.0, 1.0, 1.0],
            "sample_rate": [16000, 16000, 16000],
            "channels": [1, 1, 1],
            "checksum": ["a", "b", "c"],
        }
    )
    manifest.to_parquet(tmp_path / "manifest.parquet")
    pd.DataFrame({"id": ["4"], "path": ["a <b>.wav"], "stage": ["manifest"], "reason": ["empty"]}).to_csv(
        tmp_path / "rejected.csv", index=False
    )
    table, cols = feature_table()
    _, metrics = evaluate_run(table, cols, {"kind": "logreg"}, {"n_bootstrap": 20})
    metrics["labels"] = [evil, "calm"]
    (tmp_path / "m.json").write_text(dumps_metrics(metrics))
    bundle, _ = fit_final(table, cols, {"kind": "logreg"})
    importance_table(bundle).to_csv(tmp_path / "imp.csv", index=False)
    paths = {
        "manifest": tmp_path / "manifest.parquet",
        "rejected": tmp_path / "rejected.csv",
        "metrics": [tmp_path / "m.json"],
        "importance": [tmp_path / "imp.csv"],
        "tables": [tmp_path / "features" / "all.parquet"],
    }
    section = dataset_section("toy", paths, ["all-logreg"], tmp_path / "report.html", label_map={"x": evil})
    assert section["best"] == "all-logreg" and section["summary"]["n_unlabelled"] == 1
    assert [e["label"] for e in section["examples"]] == sorted([evil, "calm"])
    assert section["details"][0]["importance_type"] == "mean |coefficient|"
    assert section["provenance"]["tables"][0]["href"] == "features/all.parquet"
    html = render_report([section], {"config": f"label: {evil}", "versions": {"numpy": "2"}, "extractor": {}})
    assert evil not in html and html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 5
    assert "a &lt;b&gt;.wav" in html and "s&amp;1" in html and "all-logreg" in html
    assert "<script src" not in html and "<link" not in html and "http" not in html
    assert html.count("data:audio/wav;base64,") == 2 and "data:image/png;base64," in html


def test_speaker_normalisation_uses_each_speakers_own_clips():
    from serflow.models.normalisation import Normalisation, speaker_standardize

    table, cols = feature_table()
    shifted = table.copy()
    shifted.loc[shifted.speaker == "c", cols] += 100.0  # speaker c records far louder
    norm = Normalisation.for_run({"speaker_norm": True}, shifted)
    x = norm.matrix(shifted, cols)
    assert norm.applied == "per speaker"
    for spk in ("a", "b", "c"):
        rows = (shifted.speaker == spk).to_numpy()
        np.testing.assert_allclose(x[rows].mean(axis=0), 0.0, atol=1e-9)
        np.testing.assert_allclose(x[rows].std(axis=0), 1.0)
    same = norm.matrix(table, cols)
    np.testing.assert_allclose(x, same, atol=1e-4)  # a speaker's offset is gone
    assert speaker_standardize(np.ones((3, 2)), ["a", "a", "b"]).tolist() == [[0.0, 0.0]] * 3

    model = {"kind": "logreg", "speaker_norm": True}
    _, plain = evaluate_run(shifted, cols, {"kind": "logreg"}, {"n_bootstrap": 20})
    _, normed = evaluate_run(shifted, cols, model, {"n_bootstrap": 20})
    assert normed["speaker_norm"] == "per speaker" and plain["speaker_norm"] == "none"
    assert normed["model"]["speaker_norm"] is True
    assert normed["uar"] > plain["uar"]  # the held-out loud speaker no longer looks like one class
    bundle, test = fit_final(shifted, cols, model)
    assert bundle["normalisation"].applied == "per speaker" and len(test) == 4

    no_speakers = shifted.assign(speaker=None)
    _, fallback = evaluate_run(no_speakers, cols, model, {"n_bootstrap": 20})
    assert fallback["speaker_norm"].startswith("none (requested")


def test_the_report_config_dump_writes_shared_values_out():
    from serflow.outputs.report import config_text

    grid = {"C": [0.1, 1.0]}
    text = config_text({"models": {"a": {"grid": grid}, "b": {"grid": grid}}})
    assert "&id" not in text and "*id" not in text and text.count("- 0.1") == 2
