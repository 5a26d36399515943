"""Pseudo-speakers (``speakers: cluster``) and test-domain normalisation (``domain_norm``)."""

import json

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import PROBA_ATOL, run_snakemake

from serflow.corpus.speakers import SpeakerClustering, clustering_quality, group_names, split_separation
from serflow.models.training import evaluate_run, fit_final, predict


def voices(n_speakers=8, per_speaker=30, n_emotions=4, emotion_strength=1.0, seed=0):
    """Synthetic voice features: a speaker offset and an emotion shift in every column."""
    rng = np.random.default_rng(seed)
    speakers = np.repeat(np.arange(n_speakers), per_speaker)
    emotions = rng.integers(0, n_emotions, len(speakers))
    x = rng.normal(size=(n_speakers, 40))[speakers] * 3.0 + rng.normal(size=(len(speakers), 40)) * 0.5
    x += emotion_strength * np.eye(n_emotions)[emotions] @ rng.normal(size=(n_emotions, 40))
    return x, speakers, np.array([f"e{e}" for e in emotions], dtype=object)


def test_clusters_recover_speakers_and_their_number():
    x, speakers, labels = voices()
    clustering = SpeakerClustering(min_groups=2, max_groups=20)
    groups = clustering.fit_predict(x, labels)
    q = clustering_quality(groups, speakers)
    assert clustering.n_groups_ == 8 and q["adjusted_rand_index"] > 0.9 and q["purity"] > 0.95
    assert set(clustering.scores_) == set(range(2, 21))
    assert groups[0] == 0 and group_names(np.array([0, 9]))[1] == "g10"  # stable names


def test_removing_emotion_directions_leaves_no_emotion_in_the_embedding():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    x, speakers, labels = voices(emotion_strength=4.0)

    def emotion_accuracy(embedding):
        return cross_val_score(LogisticRegression(max_iter=2000), embedding, labels, cv=5).mean()

    assert emotion_accuracy(SpeakerClustering(remove_label_directions=False).embed(x, labels)) > 0.9
    assert emotion_accuracy(SpeakerClustering().embed(x, labels)) < 0.45  # 4 emotions: chance 0.25
    # Unlabelled clips (the test split) are grouped too, with the same projection.
    some = labels.copy()
    some[::3] = None
    groups = SpeakerClustering(n_groups=8).fit_predict(x, some)
    assert clustering_quality(groups, speakers)["adjusted_rand_index"] > 0.9


def test_split_separation_tells_own_groups_from_mixed_ones():
    groups = np.repeat(np.arange(10), 20)
    own = np.isin(groups, [0, 1, 2])  # the test clips fill three groups of their own
    sep = split_separation(groups, own)
    assert sep["share"] == 1.0 and sep["expected"] < 0.5 and sep["p_value"] == 0.001 and sep["distinct"]
    mixed = np.tile(np.arange(20) < 6, 10)  # 6 test clips in every group: as even as can be
    sep = split_separation(groups, mixed)
    assert sep["share"] == pytest.approx(0.3) and sep["p_value"] == 1.0 and not sep["distinct"]
    assert sep["n_test_clips"] == 60


@pytest.mark.emodb
def test_emodb_voiceprint_clusters_follow_speakers_not_emotions(emodb):
    from serflow.corpus.audio import load_audio
    from serflow.features import Clip, Voiceprint

    files = sorted(emodb.glob("*.wav"))
    extractor = Voiceprint()
    x = np.vstack([extractor.compute(Clip(load_audio(f, 16000), 16000)) for f in files])
    speakers = np.array([f.name[:2] for f in files])
    emotions = np.array([f.name[5] for f in files], dtype=object)
    groups = SpeakerClustering(n_groups=10).fit_predict(x, emotions)
    by_speaker = clustering_quality(groups, speakers)
    assert by_speaker["adjusted_rand_index"] > 0.2, by_speaker  # measured 0.27
    assert clustering_quality(groups, emotions.astype(str))["adjusted_rand_index"] < 0.05
    # Three speakers held out as a test split keep to groups of their own; every third clip does not.
    held_out = split_separation(groups, np.isin(speakers, ["10", "13", "16"]))
    assert held_out["distinct"] and held_out["share"] > held_out["expected"] + 0.1, held_out
    assert not split_separation(groups, np.arange(len(files)) % 3 == 0)["distinct"]


def _table(n=120, seed=0, test_offset=0.0):
    rng = np.random.default_rng(seed)
    labelled = np.arange(n) < 90
    label = np.array(["a", "b", "c"])[np.arange(n) % 3]
    x = rng.normal(size=(n, 6)) + np.eye(3)[np.arange(n) % 3] @ rng.normal(size=(3, 6)) * 1.5
    x[~labelled] = x[~labelled] * 2.0 + test_offset  # the test split: another recording chain
    t = pd.DataFrame(
        {
            "id": [f"c{i}" for i in range(n)],
            "label": np.where(labelled, label, None),
            "speaker": [f"g{i % 6}" for i in range(n)],
            "split": np.where(labelled, "train", "test"),
        }
    )
    for j in range(6):
        t[f"f{j}"] = x[:, j]
    return t, [f"f{j}" for j in range(6)]


def test_domain_norm_makes_test_predictions_invariant_to_the_test_domain():
    near, cols = _table(test_offset=0.0)
    far, _ = _table(test_offset=25.0)
    model = {"kind": "logreg", "params": {"C": 1.0}, "domain_norm": True}
    _, p_near = fit_final(near, cols, model)
    _, p_far = fit_final(far, cols, model)
    proba = [c for c in p_near.columns if c.startswith("proba_")]
    np.testing.assert_allclose(p_near[proba].to_numpy(), p_far[proba].to_numpy(), atol=1e-9)
    _, plain = fit_final(far, cols, {"kind": "logreg", "params": {"C": 1.0}})
    assert not np.allclose(plain[proba].to_numpy(), p_far[proba].to_numpy(), atol=1e-3)


def test_estimated_speakers_group_folds_and_per_group_normalisation_chosen_in_the_folds():
    table, cols = _table()
    table.attrs["speakers_estimated"] = True
    _, m = evaluate_run(table, cols, {"kind": "logreg", "speaker_norm": True}, {"n_bootstrap": 50})
    assert m["protocol"] == "group_kfold" and m["speakers"] == "estimated" and m["n_folds"] == 5
    assert m["speaker_norm"] == "per estimated group or none, chosen in each training fold"
    for fold in m["folds"]:
        assert len(fold["test_speakers"]) >= 1
        assert fold["params"]["feature_groups"] in (["as_is"], ["per_group"])
    _, m = evaluate_run(table, cols, {"kind": "logreg", "domain_norm": True}, {"n_bootstrap": 50})
    assert m["model"]["domain_norm"] is True
    table.attrs["speakers_estimated"] = False
    _, m = evaluate_run(table, cols, {"kind": "logreg"}, {"n_bootstrap": 50})
    assert m["protocol"] == "loso" and m["speakers"] == "given"


@pytest.fixture(scope="module")
def competition_without_speakers(tmp_path_factory):
    """A competition-style folder (no speaker ids) from the demo generator's 12 voices, three
    of them held out as the unlabelled test split."""
    from serflow.corpus.demo import generate_demo_corpus

    root = tmp_path_factory.mktemp("competition")
    generate_demo_corpus(root / "gen", n_train=120, n_test=0, n_speakers=12, seed=4)
    clips = pd.read_csv(root / "gen/train.csv")
    held_out = clips["speaker"].isin(sorted(clips["speaker"].unique())[-3:])
    train, test = clips[~held_out], clips[held_out]
    pd.DataFrame({"id": train["id"], "path": "gen/" + train["path"], "label": train["label"]}).to_csv(
        root / "train.csv", index=False
    )
    pd.DataFrame({"id": test["id"], "path": "gen/" + test["path"]}).to_csv(root / "test.csv", index=False)
    truth = pd.concat([train[["id", "speaker"]], test[["id", "speaker"]]]).set_index("id")["speaker"]
    return root, truth


def test_workflow_with_cluster_speakers_and_domain_norm(competition_without_speakers, tmp_path):
    root, truth = competition_without_speakers
    config = {
        "datasets": [
            {
                "name": "comp",
                "adapter": "competition",
                "root": str(root),
                "id_column": "id",
                "path_column": "path",
                "label_column": "label",
                "speakers": "cluster",
                "speaker_clusters": {"max_groups": 20},
            }
        ],
        "feature_tables": ["all"],
        "models": {
            "logreg": {"kind": "logreg", "params": {"C": 0.1}},
            "logreg_dn": {"kind": "logreg", "params": {"C": 0.1}, "domain_norm": True},
        },
        "runs": [{"feature_sets": ["all"], "models": ["logreg", "logreg_dn"]}],
        "evaluation": {"n_bootstrap": 100},
    }
    proc = run_snakemake(tmp_path, config)
    res = tmp_path / "results/comp"
    summary = json.loads((res / "speakers.json").read_text())
    assert summary["n_clips"] == 120 and "against_known_speakers" not in summary  # the folder has no ids
    groups = pd.read_parquet(res / "speakers.parquet").set_index("id")["speaker"]
    assert sorted(groups.index) == sorted(truth.index)  # training and test clips alike
    sep = summary["test_split"]  # three voices only the test split has
    assert sep["n_test_clips"] == len(pd.read_csv(root / "test.csv")) > 0
    assert sep["distinct"] and sep["p_value"] < 0.01 and sep["share"] > sep["expected"]
    assert 4 <= groups.nunique() == summary["n_groups"] <= 20
    table = pd.read_parquet(res / "features/all.parquet")
    assert table["speaker"].str.fullmatch(r"g\d+").all()
    assert not any(c.startswith("voiceprint_") for c in table.columns)  # not in the all set
    uar = {}
    for run in ("all-logreg", "all-logreg_dn"):
        m = json.loads((res / f"runs/{run}/metrics.json").read_text())
        assert m["protocol"] == "group_kfold" and m["speakers"] == "estimated" and m["speaker_independent"]
        assert m["model"].get("domain_norm", False) == run.endswith("_dn")
        uar[run] = m["uar"]
    assert uar["all-logreg"] != uar["all-logreg_dn"]  # the normalisation reached the folds
    subs = json.loads((res / "submissions.json").read_text())
    assert subs["best_speakers"] == "estimated" and subs["best_protocol"] == "group_kfold"
    # a distinct test split: the submission comes from the domain_norm run, whatever CV says
    assert subs["best"] == "all-logreg_dn" and subs["best_normalisation"] == "test domain"
    assert "among the 1 domain_norm run(s)" in subs["best_reason"]
    assert "best run all-logreg_dn: UAR" in proc.stderr  # the closing summary agrees
    report = (tmp_path / "results/report.html").read_text()
    assert "<strong>all-logreg_dn</strong> (highlighted, first; highest cross-validated uar among" in report
    # the API gives the workflow's test predictions of a domain-normalised model
    bundle = joblib.load(res / "runs/all-logreg_dn/model.joblib")
    expected = pd.read_parquet(res / "runs/all-logreg_dn/test_predictions.parquet")
    got = predict(bundle, table[table["label"].isna()])
    assert list(got["id"]) == list(expected["id"]) and list(got["prediction"]) == list(expected["prediction"])
    cols = [c for c in got.columns if c.startswith("proba_")]
    np.testing.assert_allclose(got[cols].to_numpy(), expected[cols].to_numpy(), rtol=0, atol=PROBA_ATOL)
    assert "Speakers were estimated" in report and f"in {summary['n_groups']} groups by voice" in report
    assert f"(permutation p = {sep['p_value']:.3f})" in report
    assert "and the best run was chosen among them" in report


def _voices_table(groups):
    x, _, labels = voices(emotion_strength=1.5, seed=3)
    t = pd.DataFrame(
        {"id": [f"c{i}" for i in range(len(x))], "label": labels, "speaker": groups, "split": "train"}
    )
    for j in range(x.shape[1]):
        t[f"f{j}"] = x[:, j]
    t.attrs["speakers_estimated"] = True
    return t, [f"f{j}" for j in range(x.shape[1])]


def test_the_inner_folds_normalise_per_group_only_where_it_helps():
    model = {"kind": "logreg", "speaker_norm": True, "grid": {"C": [0.1, 1.0]}}
    _, speakers, labels = voices(emotion_strength=1.5, seed=3)
    # Groups that are the voices: normalising per group removes the speaker offsets.
    table, cols = _voices_table([f"g{s}" for s in speakers])
    _, m = evaluate_run(table, cols, model, {"n_bootstrap": 20})
    picks = [f["params"]["feature_groups"] for f in m["folds"]]
    assert picks.count(["per_group"]) >= 4, picks
    bundle, _ = fit_final(table, cols, model)
    assert bundle["normalisation"].applied == "per estimated group (chosen by the inner folds)"
    assert bundle["normalisation"].speaker and len(bundle["feature_names"]) == len(cols)
    # Groups that follow emotion (as imperfect clusters can): per-group scaling would
    # erase the labels, and the inner folds keep the features as they are.
    halves = np.arange(len(labels)) % 2
    table, cols = _voices_table([f"{lab}-{h}" for lab, h in zip(labels, halves)])
    _, m = evaluate_run(table, cols, model, {"n_bootstrap": 20})
    picks = [f["params"]["feature_groups"] for f in m["folds"]]
    assert picks.count(["as_is"]) >= 4, picks
    bundle, _ = fit_final(table, cols, model)
    assert bundle["normalisation"].applied == "none (chosen by the inner folds)"
    assert not bundle["normalisation"].speaker
