"""Cross-corpus evaluation: shared labels, normalisation per test corpus, the matrix in the report."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import emodb_subset, run_snakemake, tone, write_wav
from selenium.webdriver.common.by import By
from test_ranking import check_ranking_in_report

from serflow.models.cross_corpus import check_columns, cross_corpus, pooled, train_test

MODEL = {"kind": "logreg", "params": {"C": 1.0}}
EVALUATION = {"random_state": 0, "inner_splits": 3}


def corpus(labels, speakers=4, per=8, shift=0.0, seed=0):
    """A feature table: classes apart along the first columns, each speaker offset by ``shift``."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(speakers):
        for k, label in enumerate(labels):
            for i in range(per):
                x = rng.normal(size=4) + 2.0 * np.eye(4)[k % 4] + shift * (s + 1)
                rows.append(
                    {
                        "id": f"s{s}_{label}_{i}",
                        "label": label,
                        "speaker": f"s{s}",
                        "split": "train",
                        **{f"f{j}": x[j] for j in range(4)},
                    }
                )
    t = pd.DataFrame(rows)
    t.insert(4, "stratum", None)
    return t, [f"f{j}" for j in range(4)]


def test_only_shared_labels_are_trained_and_scored():
    train, columns = corpus(["anger", "neutral", "sadness", "boredom"])
    test, _ = corpus(["anger", "neutral", "sadness", "surprise"], seed=1)
    cell = train_test(train, test, columns, MODEL, EVALUATION, 50, 0)
    assert cell["labels"] == ["anger", "neutral", "sadness"]
    assert cell["dropped_labels"] == {"train": ["boredom"], "test": ["surprise"]}
    assert cell["dropped_clips"] == {"train": 32, "test": 32}
    assert cell["n_train"] == cell["n_test"] == 96 and cell["uar"] > 0.8
    with pytest.raises(ValueError, match="fewer than two labels in common"):
        train_test(train, corpus(["joy", "anger"])[0], columns, MODEL, EVALUATION, 50, 0)


def test_speaker_normalisation_applies_per_test_corpus():
    train, columns = corpus(["anger", "neutral", "sadness"])
    test, _ = corpus(["anger", "neutral", "sadness"], seed=1)
    shifted, _ = corpus(["anger", "neutral", "sadness"], seed=1, shift=3.0)  # each test speaker far off
    spk = {**MODEL, "speaker_norm": True}
    near, far = (train_test(train, t, columns, spk, EVALUATION, 50, 0) for t in (test, shifted))
    assert far["uar"] == pytest.approx(
        near["uar"], abs=1e-12
    )  # each test speaker standardised on its own clips
    assert far["speaker_norm"] == "per speaker"
    plain = train_test(train, shifted, columns, MODEL, EVALUATION, 50, 0)
    assert plain["uar"] < near["uar"] - 0.2


def test_the_test_corpus_is_normalised_over_all_its_clips():
    """Its speakers' statistics do not depend on which labels the training corpus shares."""
    from serflow.models.training import fit_final, predict

    train, columns = corpus(["anger", "neutral"])
    test, _ = corpus(["anger", "neutral", "sadness"], seed=1, shift=1.0)
    spk = {**MODEL, "speaker_norm": True}
    cell, pred = train_test(train, test, columns, spk, EVALUATION, 50, 0, return_predictions=True)
    bundle, _ = fit_final(train, columns, spk, EVALUATION)
    expected = predict(bundle, test).set_index("id").loc[pred["id"], "prediction"]
    assert list(pred["prediction"]) == list(expected) and len(pred) == 64
    shared_only = test[test["label"] != "sadness"]  # normalised over these alone, it differs
    narrow = predict(bundle, shared_only)
    assert not np.allclose(
        narrow["proba_anger"].to_numpy(),
        predict(bundle, test).set_index("id").loc[narrow["id"], "proba_anger"].to_numpy(),
    )


def test_matrix_pooled_training_and_mismatched_columns():
    tables = {name: corpus(["anger", "neutral", "sadness"], seed=k)[0] for k, name in enumerate("abc")}
    own = {
        n: {
            "uar": 0.9,
            "uar_ci95": [0.8, 1.0],
            "accuracy": 0.9,
            "accuracy_ci95": [0.8, 1.0],
            "n_clips": 96,
            "labels": ["anger", "neutral", "sadness"],
            "protocol": "loso",
        }
        for n in tables
    }
    out = cross_corpus(tables, own, MODEL, EVALUATION, n_bootstrap=50)
    assert out["matrix"]["a"]["a"]["within"] == "loso" and out["matrix"]["a"]["a"]["uar"] == 0.9
    assert set(out["leave_one_out"]) == {"a", "b", "c"} and out["leave_one_out"]["a"]["n_train"] == 192
    tables["a"].attrs["column_groups"] = {c: "g" for c in ("f0", "f1", "f2", "f3")}
    tables["b"].attrs["speakers_estimated"] = True
    both = pooled({"a": tables["a"], "b": tables["b"]})
    assert both["id"].is_unique and set(both["speaker"].str[:2]) == {"a/", "b/"}
    assert both.attrs["column_groups"]["f3"] == "g" and both.attrs["speakers_estimated"]
    assert cross_corpus(dict(list(tables.items())[:2]), own, MODEL, EVALUATION, 50)["leave_one_out"] == {}
    other = tables["b"].rename(columns={"f3": "g3"})
    with pytest.raises(ValueError, match="datasets a and b have different feature columns"):
        check_columns({"a": tables["a"], "b": other})


def copies_of(table, columns, label, move=(0.0, 0.0, 0.0, 0.0), n=1):
    """``n`` augmented copies of each clip of ``label``: its features moved by ``move``."""
    rows = table[table["label"] == label]
    parts = []
    for k in range(n):
        part = pd.DataFrame({"id": rows["id"] + f"~aug{k}", "source": rows["id"]})
        for c, step in zip(columns, move):
            part[c] = rows[c].to_numpy() + step
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def test_augmented_copies_train_only_on_the_training_corpus():
    labels = ["anger", "neutral", "sadness"]
    tables = {name: corpus(labels, seed=k)[0] for k, name in enumerate("abc")}
    columns = [f"f{j}" for j in range(4)]
    # b's anger copies sit on neutral clips and throw off any model trained on them: never
    # used when b is tested
    copies = {
        "a": copies_of(tables["a"], columns, "anger"),
        "b": copies_of(tables["b"], columns, "anger", move=(-2.0, 2.0, 0.0, 0.0), n=3),
        "c": copies_of(tables["c"], columns, "sadness"),
    }
    own = {n: {"uar": 0.9, "uar_ci95": [0.8, 1.0], "accuracy": 0.9, "accuracy_ci95": [0.8, 1.0],
               "n_clips": 96, "labels": labels, "protocol": "loso"} for n in tables}  # fmt: skip
    out = cross_corpus(tables, own, MODEL, EVALUATION, n_bootstrap=50, copies=copies)
    plain = cross_corpus(tables, own, MODEL, EVALUATION, n_bootstrap=50)
    assert out["matrix"]["a"]["b"]["n_copies"] == 32 and out["matrix"]["b"]["a"]["n_copies"] == 96
    assert out["matrix"]["a"]["c"]["n_copies"] == 32 and plain["matrix"]["a"]["b"]["n_copies"] == 0
    assert out["leave_one_out"]["b"]["n_copies"] == 64  # a's and c's, pooled
    assert out["leave_one_out"]["a"]["n_copies"] == 128
    for test in "ac":  # the models tested on a and c never saw b's far-off copies ...
        assert out["matrix"]["a"][test]["uar"] > 0.8 and out["matrix"]["c"][test]["uar"] > 0.8
    # ... while the one fitted on b with them is thrown off
    assert out["matrix"]["b"]["a"]["uar"] < plain["matrix"]["b"]["a"]["uar"] - 0.1
    # copies of a dropped label are dropped with it
    only_two = {"a": tables["a"], "d": corpus(["neutral", "sadness"], seed=5)[0]}
    cell = train_test(only_two["a"], only_two["d"], columns, MODEL, EVALUATION, 50, 0, copies=copies["a"])
    assert cell["n_copies"] == 0 and cell["dropped_labels"]["train"] == ["anger"]


def test_runs_compared_per_cell_on_the_same_test_clips():
    from serflow.models.cross_corpus import compare_cells

    labels = ["anger", "neutral", "sadness"]
    tables = {name: corpus(labels, seed=k)[0] for k, name in enumerate("abc")}
    own = {n: {"uar": 0.9, "uar_ci95": [0.8, 1.0], "accuracy": 0.9, "accuracy_ci95": [0.8, 1.0],
               "n_clips": 96, "labels": labels, "protocol": "loso"} for n in tables}  # fmt: skip
    results, predictions = {}, {}
    for run, model in (("lr", MODEL), ("lr_again", MODEL), ("majority", {"kind": "majority"})):
        result = cross_corpus(tables, own, model, EVALUATION, n_bootstrap=50)
        predictions[run] = result.pop("predictions")
        results[run] = result
    assert len(predictions["lr"]) == 6 * 96 + 3 * 96  # six pairs and three pooled cells
    assert set(predictions["lr"]["train"]) == {"a", "b", "c", "(all others)"}
    cells = compare_cells(results, predictions, n_boot=200, seed=0)
    assert len(cells) == 9
    for cell in cells:
        assert cell["best"] == "lr_again"  # tied with lr: the name breaks the tie
        same = cell["runs"]["lr"]
        assert same["uar_diff"] == 0 and same["p_value"] == 1 and not same["distinguishable"]
        assert same["uar_diff_ci95"] == [0, 0] and same["resampled"] == "speakers"
        worse = cell["runs"]["majority"]
        assert worse["distinguishable"] and worse["uar_diff"] < -0.4 and worse["uar_diff_ci95"][1] < 0
        assert worse["uar_diff"] == pytest.approx(worse["uar"] - cell["runs"]["lr_again"]["uar"], abs=1e-9)
    assert compare_cells({"lr": results["lr"]}, {"lr": predictions["lr"]}) == []  # nothing to compare


def test_the_plan_pairs_runs_datasets_share():
    from test_plan import config

    from serflow.plan import PlanError, build_plan

    two = [
        {"name": "d1", "adapter": "demo", "n_train": 40, "n_test": 0},
        {
            "name": "d2",
            "adapter": "demo",
            "n_train": 40,
            "n_test": 0,
            "runs": [{"feature_sets": ["prosody"], "models": ["lr"]}],
        },
    ]
    models = {"lr": {"kind": "logreg"}, "svc": {"kind": "svc"}}
    runs = [{"feature_sets": ["prosody"], "models": ["lr", "svc"]}]
    plan = build_plan(config(datasets=two, models=models, runs=runs, cross_corpus={}))
    assert plan.cross_corpus == {"prosody-lr": ["d1", "d2"]} and plan.leave_one_out
    with pytest.raises(PlanError, match=r"runs \['prosody-svc'\] are not runs of two or more datasets"):
        build_plan(config(datasets=two, models=models, runs=runs, cross_corpus={"runs": ["prosody-svc"]}))
    other = [two[0], {**two[1], "features": {"sample_rate": 22050}}]
    with pytest.raises(PlanError, match="extract its features with different settings"):
        build_plan(config(datasets=other, models=models, runs=runs, cross_corpus={}))


@pytest.mark.emodb
def test_emodb_against_a_corpus_with_other_labels_in_the_report(emodb, tmp_path, browser):
    """Also the runs ranked across the two datasets (tests/test_ranking.py's check)."""
    wav = emodb_subset(emodb, tmp_path / "emodb", speakers=("03", "10", "15"))
    rows = []
    for s, speaker in enumerate(("x1", "x2")):
        for k, label in enumerate(("ang", "neu", "sad", "sur")):
            for i in range(4):
                path = tmp_path / "other" / f"{speaker}_{label}_{i}.wav"
                write_wav(path, tone(120.0 + 40 * k + 10 * s + 3 * i, 1.2, amp=0.2 + 0.1 * k))
                rows.append({"path": str(path), "label": label, "speaker": speaker})
    pd.DataFrame(rows).to_csv(tmp_path / "other.csv", index=False)
    config = {
        "datasets": [
            {"name": "emodb3", "adapter": "emodb", "root": str(wav)},
            {
                "name": "other",
                "adapter": "csv",
                "table": str(tmp_path / "other.csv"),
                "speaker_column": "speaker",
                "label_map": {"ang": "anger", "neu": "neutral", "sad": "sadness", "sur": "surprise"},
            },
        ],
        "feature_tables": ["prosody"],
        # one gain copy of each anger clip, for the cross-corpus runs too (training side only)
        "augmentations": {"louder": {"classes": ["anger"], "transforms": [{"name": "gain", "db": [3, 6]}]}},
        "models": {
            "lr_spk": {"kind": "logreg", "params": {"C": 0.1}, "speaker_norm": True, "augment": "louder"},
            "forest": {"kind": "random_forest", "params": {"n_estimators": 50}},
            "majority": {"kind": "majority"},
        },
        "runs": [{"feature_sets": ["prosody"], "models": ["lr_spk", "forest", "majority"]}],
        "cross_corpus": {"runs": ["prosody-lr_spk", "prosody-forest"]},
        "evaluation": {"n_bootstrap": 50},
    }
    run_snakemake(tmp_path, config)
    result = json.loads((tmp_path / "results/cross_corpus/prosody-lr_spk.json").read_text())
    cell = result["matrix"]["emodb3"]["other"]
    assert cell["labels"] == ["anger", "neutral", "sadness"] and cell["dropped_labels"]["test"] == [
        "surprise"
    ]
    assert set(cell["dropped_labels"]["train"]) == {"boredom", "disgust", "fear", "happiness"}
    assert cell["n_test"] == 24 and cell["dropped_clips"]["test"] == 8
    n_anger = len(list(wav.glob("?????W*.wav")))  # EmoDB's code for anger (Wut)
    assert n_anger > 0 and cell["n_copies"] == n_anger
    assert result["matrix"]["other"]["emodb3"]["n_copies"] == 8  # other's own anger clips
    own = json.loads((tmp_path / "results/emodb3/runs/prosody-lr_spk/metrics.json").read_text())
    assert result["matrix"]["emodb3"]["emodb3"]["uar"] == own["uar"]
    browser.get((tmp_path / "results/report.html").as_uri())
    table = browser.find_element(By.ID, "cross-corpus-prosody-lr_spk")
    cells = table.find_elements(By.CSS_SELECTOR, "td")
    assert len(cells) == 4 and len(table.find_elements(By.CSS_SELECTOR, "td.within")) == 2
    assert float(cells[1].get_attribute("data-value")) == pytest.approx(cell["uar"], abs=1e-12)
    section = browser.find_element(By.ID, "cross-corpus").text
    assert "emodb3 → other: labels anger, neutral, sadness kept; dropped" in section
    assert "surprise from other (8 clips)" in section
    # the two cross-corpus runs compared per cell, on the same test clips
    cells = json.loads((tmp_path / "results/cross_corpus/comparison.json").read_text())["cells"]
    assert [(c["train"], c["test"]) for c in cells] == [("emodb3", "other"), ("other", "emodb3")]
    forest = json.loads((tmp_path / "results/cross_corpus/prosody-forest.json").read_text())
    for c in cells:
        uars = {"prosody-lr_spk": result["matrix"][c["train"]][c["test"]]["uar"]}
        uars["prosody-forest"] = forest["matrix"][c["train"]][c["test"]]["uar"]
        assert c["best"] == max(uars, key=lambda r: (uars[r], r))
        other = next(r for r in uars if r != c["best"])
        assert c["runs"][other]["uar_diff"] == pytest.approx(uars[other] - uars[c["best"]], abs=1e-9)
    rows = browser.find_elements(By.CSS_SELECTOR, "#cross-corpus-comparison tr[data-run]")
    assert len(rows) == 4
    best_rows = [r for r in rows if "best" in (r.get_attribute("class") or "")]
    assert [r.get_attribute("data-run") for r in best_rows] == [c["best"] for c in cells]
    check_ranking_in_report(browser, n_runs=3, n_datasets=2)
