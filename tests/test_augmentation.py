"""Augmented copies of training clips: transforms, the copies listed, and where copies may go."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import tone

from serflow.augmentation import Augmentation, list_copies, make_transform
from serflow.models.pipeline import fit_model, inner_folds
from serflow.models.training import dumps_metrics, evaluate_run, fit_final, prepare_run, with_copies

SR = 16000


def rng(seed=0):
    return np.random.default_rng(seed)


def test_noise_reaches_its_signal_to_noise_ratio():
    y = tone(200.0, 2.0, sr=SR)
    for colour in ("white", "pink", "brown"):
        out = make_transform({"name": "noise", "snr_db": 10.0, "colour": colour})(y, SR, rng())
        snr = 10 * np.log10(np.mean(y.astype(np.float64) ** 2) / np.mean((out - y).astype(np.float64) ** 2))
        assert snr == pytest.approx(10.0, abs=0.01), colour
    pink = (
        make_transform({"name": "noise", "snr_db": 0.0, "colour": "pink"})(np.zeros(SR) + 0.1, SR, rng())
        - 0.1
    )
    spectrum = np.abs(np.fft.rfft(pink)) ** 2
    assert spectrum[10:100].mean() > 10 * spectrum[5000:6000].mean()  # pink: power falls with frequency


def test_transforms_do_what_their_parameters_say():
    y = tone(200.0, 1.0, sr=SR)
    faded = make_transform({"name": "fade", "in_s": 0.25, "out_s": 0.1})(y, SR, rng())
    assert (
        faded[0] == 0
        and faded[-1] == 0
        and np.array_equal(faded[SR // 4 : SR - SR // 10], y[SR // 4 : SR - SR // 10])
    )
    louder = make_transform({"name": "gain", "db": 6.0})(y, SR, rng())
    np.testing.assert_allclose(louder, y * 10 ** (6 / 20), rtol=1e-6)
    slower = make_transform({"name": "time_stretch", "rate": 0.8})(y, SR, rng())
    assert abs(len(slower) - len(y) / 0.8) < 0.01 * len(y)
    shifted = make_transform({"name": "pitch_shift", "semitones": 12.0})(y, SR, rng())
    assert len(shifted) == len(y)
    peak = lambda s: np.argmax(np.abs(np.fft.rfft(s))) * SR / len(s)  # noqa: E731
    assert peak(shifted) == pytest.approx(400.0, rel=0.02)  # an octave up
    wet = make_transform({"name": "reverb", "rt60_s": 0.4, "wet": 0.5})(y, SR, rng())
    assert len(wet) == len(y) and not np.allclose(wet, y)
    never = make_transform({"name": "gain", "db": 6.0, "p": 0.0})(y, SR, rng())
    assert np.array_equal(never, y)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "echo"}, "unknown transform 'echo'"),
        ({"name": "gain", "gain_db": 3}, "gain: unknown parameter"),
        ({"name": "noise", "snr_db": [20, 10]}, "snr_db must be a number or \\[low, high\\]"),
        ({"name": "noise", "snr_db": [1, 2, 3]}, "noise: snr_db must be a number or \\[low, high\\]"),
        ({"name": "pitch_shift", "semitones": "up"}, "pitch_shift: semitones must be a number"),
        ({"name": "fade", "p": "often"}, "fade: p must be in"),
        ({"name": "noise", "colour": "blue"}, "colour must be one of"),
        ({"name": "fade", "p": 2}, "p must be in"),
    ],
)
def test_bad_transform_settings_are_named(spec, message):
    with pytest.raises(ValueError, match=message):
        make_transform(spec)


def manifest(n_per_label=(12, 6, 3), speakers=3):
    rows = []
    for s in range(speakers):
        for label, n in zip(("angry", "neutral", "sad"), n_per_label):
            for k in range(n):
                rows.append({"id": f"s{s}_{label}_{k}", "label": label, "speaker": f"s{s}", "split": "train"})
    rows.append({"id": "test_0", "label": None, "speaker": None, "split": "test"})
    m = pd.DataFrame(rows)
    m["path"] = m["id"] + ".wav"
    m["checksum"] = [f"{i:064x}" for i in range(len(m))]
    m["stratum"] = None
    return m


def test_copies_follow_the_classes_clips_and_seed_asked_for():
    m = manifest()
    noise = [{"name": "noise"}]
    ten = list_copies(
        m, Augmentation.from_config("ten", {"transforms": noise, "classes": ["sad"], "clips": 4})
    )
    assert len(ten) == 4 and set(ten["label"]) == {"sad"} and ten["source"].is_unique
    again = list_copies(
        m, Augmentation.from_config("ten", {"transforms": noise, "classes": ["sad"], "clips": 4})
    )
    pd.testing.assert_frame_equal(ten, again)  # seeded
    other = list_copies(
        m, Augmentation.from_config("ten", {"transforms": noise, "classes": ["sad"], "clips": 4, "seed": 1})
    )
    assert set(other["source"]) != set(ten["source"])
    balanced = list_copies(m, Augmentation.from_config("b", {"transforms": noise, "copies": "balance"}))
    counts = m["label"].value_counts() + balanced["label"].value_counts().reindex(
        m["label"].dropna().unique(), fill_value=0
    )
    assert set(counts.dropna()) == {36}  # every class brought to the largest
    assert "test_0" not in set(balanced["source"])  # unlabelled clips get no copies
    two = list_copies(m, Augmentation.from_config("two", {"transforms": noise, "copies": 2}))
    assert len(two) == 2 * 63 and two["checksum"].is_unique
    # a copy's identity: its source, the transforms, the seed and its number, not the name
    same = Augmentation.from_config("other_name", {"transforms": noise, "copies": 2})
    assert list(list_copies(m, same)["checksum"]) == list(two["checksum"])
    with pytest.raises(ValueError, match="classes \\['sadness'\\] have no labelled clip"):
        list_copies(m, Augmentation.from_config("x", {"transforms": noise, "classes": ["sadness"]}))


def test_a_copy_is_the_same_samples_every_time_and_differs_from_its_siblings():
    aug = Augmentation.from_config(
        "a",
        {"transforms": [{"name": "noise", "snr_db": [5, 30]}, {"name": "pitch_shift", "semitones": [-2, 2]}]},
    )
    y = tone(180.0, 0.5, sr=SR)
    first, second = aug.copy_checksum("abc", 0), aug.copy_checksum("abc", 1)
    assert np.array_equal(aug.apply(y, SR, first), aug.apply(y, SR, first))
    assert not np.allclose(aug.apply(y, SR, first), aug.apply(y, SR, second))


def separable_toy(seed=0):
    """Features of pure noise (no class signal) for 6 speakers x 3 classes x 6 clips."""
    r = np.random.default_rng(seed)
    n = 6 * 3 * 6
    t = pd.DataFrame(r.normal(size=(n, 8)), columns=[f"f{i}" for i in range(8)])
    t.insert(0, "id", [f"c{i:03d}" for i in range(n)])
    t.insert(1, "label", np.tile(np.repeat(["angry", "neutral", "sad"], 6), 6))
    t.insert(2, "speaker", np.repeat([f"s{k}" for k in range(6)], 18))
    t.insert(3, "split", "train")
    return t, [f"f{i}" for i in range(8)]


def duplicates(table, columns, k=2):
    """``k`` exact copies of every clip: a model fitted on a copy of a clip recognises it."""
    rows = pd.concat([table] * k, ignore_index=True)
    copies = rows[columns].copy()
    copies.insert(0, "id", [f"{i}~dup~{j}" for j in range(k) for i in table["id"]])
    copies.insert(1, "source", list(table["id"]) * k)
    return copies


def test_copies_of_held_out_clips_never_reach_a_training_side():
    table, columns = separable_toy()
    copies = duplicates(table, columns)
    run = prepare_run(table, columns, {"kind": "logreg"}, {"protocol": "loso"}, copies)
    for train, test in run.folds:
        x, y, groups, sources = with_copies(run.x, run.y, run.groups, run.copies, train)
        assert len(x) == 3 * len(train)  # the fold's clips and their copies, no others
        assert not set(groups) & set(run.groups[test])  # nothing of a held-out speaker
        held_out = {tuple(r) for r in run.x[test]}
        assert not any(tuple(r) in held_out for r in x)
        for inner_train, inner_test in inner_folds(y, groups, 3, 0, sources):
            assert (sources[inner_test] == inner_test).all()  # only clips are scored
            assert set(sources[inner_train]) <= set(inner_train)  # copies of inner-training clips only
            assert not set(groups[inner_train]) & set(groups[inner_test])
            assert len(inner_train) == 3 * np.sum(sources[inner_train] == inner_train)


@pytest.mark.parametrize("protocol", ["loso", "stratified_kfold"])
def test_a_memorising_model_gains_nothing_from_copies_of_its_test_clips(protocol):
    """Random forests recognise exact duplicates: had a test clip's copy reached training,
    its label would be predicted (as the leaky control shows)."""
    table, columns = separable_toy()
    model = {"kind": "random_forest", "params": {"n_estimators": 50}, "grid": {"max_depth": [None, 3]}}
    ev = {"protocol": protocol, "n_bootstrap": 20}
    copies = duplicates(table, columns)
    predictions, metrics = evaluate_run_with(table, columns, model, ev, copies)
    assert len(predictions) == len(table)  # copies are never scored
    assert metrics["uar"] < 0.6
    if protocol == "stratified_kfold":  # the control: copies listed as clips, split away from their sources
        as_clips = copies.drop(columns="source").assign(
            label=table["label"].tolist() * 2, speaker=None, split="train"
        )
        leaky = pd.concat([table.assign(speaker=None), as_clips], ignore_index=True)
        _, control = evaluate_run(leaky, columns, model, ev)
        assert control["uar"] > 0.9


def evaluate_run_with(table, columns, model, ev, copies):
    from serflow.models.training import fit_folds, summarize_run

    run = prepare_run(table, columns, model, ev, copies)
    return summarize_run(run, fit_folds(run), len(columns))


def test_inner_scores_see_no_copy_of_an_inner_test_clip():
    table, columns = separable_toy()
    copies = duplicates(table, columns)
    run = prepare_run(table, columns, {"kind": "random_forest"}, {"protocol": "stratified_kfold"}, copies)
    x, y, _, sources = with_copies(run.x, run.y, None, run.copies, np.arange(len(run.y)))
    search = fit_model(
        "random_forest",
        x,
        y,
        None,
        params={"n_estimators": 50},
        grid={"max_depth": [None, 2]},
        sources=sources,
    )
    assert search.cv_results_["mean_test_score"].max() < 0.6
    leaky = fit_model("random_forest", x, y, None, params={"n_estimators": 50}, grid={"max_depth": [None, 2]})
    assert leaky.cv_results_["mean_test_score"].max() > 0.9  # the control: copies split from their clips


def test_counts_per_fold_normalisation_and_determinism():
    table, columns = separable_toy()
    table[columns] += np.repeat(np.arange(6), 18)[:, None] * 5.0  # speakers far apart
    sad = table[table["label"] == "sad"]
    copies = duplicates(sad, columns, k=1)
    copies[columns] += 0.5  # a copy sits near its source
    model = {"kind": "logreg", "speaker_norm": True, "augment": {"name": "dup"}}
    ev = {"protocol": "loso", "n_bootstrap": 20}
    predictions, metrics = evaluate_run_with(table, columns, model, ev, copies)
    _, again = evaluate_run_with(table, columns, model, ev, copies)
    assert dumps_metrics(metrics) == dumps_metrics(again)
    for fold in metrics["folds"]:
        counts = fold["train_per_label"]
        assert counts["before"] == {"angry": 30, "neutral": 30, "sad": 30}
        assert counts["copies"] == {"angry": 0, "neutral": 0, "sad": 30}
        assert counts["after"] == {"angry": 30, "neutral": 30, "sad": 60}
    assert metrics["model"]["augment"] == {"name": "dup"}
    run = prepare_run(table, columns, model, ev, copies)
    # copies standardised with their speaker's clip statistics (not their own): 0.5 / std from their source
    speaker_std = table[columns].groupby(table["speaker"]).transform(lambda c: c.std(ddof=0)).to_numpy()
    np.testing.assert_allclose(
        run.copies.x - run.x[run.copies.source], 0.5 / speaker_std[sad.index], rtol=1e-6
    )
    bundle, _ = fit_final(table, columns, model, ev, copies=copies)
    assert bundle["training"]["clips_per_label"] == {"angry": 36, "neutral": 36, "sad": 36}
    assert bundle["training"]["clips_per_label_fitted"] == {"angry": 36, "neutral": 36, "sad": 72}
    assert bundle["training"]["copies_per_label"]["sad"] == 36


def test_the_plan_checks_augment_names_and_kinds():
    from test_plan import CNN, config

    from serflow.plan import PlanError, build_plan

    aug = {"noisy": {"transforms": [{"name": "noise", "snr_db": [10, 20]}]}}
    runs = [{"feature_sets": ["prosody"], "models": ["m"]}]
    plan = build_plan(
        config(augmentations=aug, models={"m": {"kind": "logreg", "augment": "noisy"}}, runs=runs)
    )
    assert plan.models["m"].settings["augment"]["transforms"][0]["snr_db"] == [10, 20]
    assert plan.augmentations_of("demo") == ["noisy"]
    with pytest.raises(PlanError, match="'wet' is not defined in 'augmentations'"):
        build_plan(config(augmentations=aug, models={"m": {"kind": "logreg", "augment": "wet"}}, runs=runs))
    with pytest.raises(PlanError, match="augmentations: bad.*pitch_shift: unknown parameter"):
        build_plan(config(augmentations={"bad": {"transforms": [{"name": "pitch_shift", "steps": 2}]}}))
    cnn = {**CNN, "augmentations": aug}
    cnn["models"] = {"c": {"kind": "cnn", "params": {"n_frames": 50}, "augment": "noisy"}}
    cnn["runs"] = [{"feature_sets": ["logmel"], "models": ["c"]}]
    assert build_plan(config(**cnn)).augmentation("c").name == "noisy"  # spectrograms of the copies


def test_early_stopping_holds_out_clips_only_and_copies_follow_their_clip():
    from serflow.models.neural import validation_split
    from serflow.models.pipeline import copy_origin

    y = np.tile(np.arange(3), 20)
    groups = np.repeat([f"s{k}" for k in range(6)], 10)
    sources = np.concatenate([np.arange(60), np.arange(0, 60, 2)])  # a copy of every other clip
    y_all, g_all = np.concatenate([y, y[::2]]), np.concatenate([groups, groups[::2]])
    fit, held = validation_split(y_all, g_all, 0.2, 0, copy_origin(sources))
    assert (held < 60).all() and len(held) == 10  # one speaker's clips, no copy
    assert set(fit) == set(range(60)) - set(held) | {60 + k for k in range(30) if 2 * k not in set(held)}
    plain_fit, plain_held = validation_split(y, groups, 0.2, 0)
    assert list(plain_held) == list(held)  # the same clips held out as without copies


AUGMENTED_CONFIG = {
    "datasets": [{"name": "demo", "adapter": "demo", "n_train": 40, "n_test": 6, "seed": 4}],
    "feature_tables": ["prosody"],
    "augmentations": {
        "sad_noise": {
            "classes": ["sad"],
            "clips": 5,
            "copies": 2,
            "transforms": [
                {"name": "noise", "snr_db": [10, 20]},
                {"name": "fade", "in_s": 0.1, "out_s": 0.1},
            ],
        }
    },
    "models": {"lr": {"kind": "logreg"}, "lr_aug": {"kind": "logreg", "augment": "sad_noise"}},
    "runs": [{"feature_sets": ["prosody"], "models": ["lr", "lr_aug"]}],
    "fusions": {"both": {"runs": ["prosody-lr", "prosody-lr_aug"], "method": "stacked"}},
    "evaluation": {"n_bootstrap": 50},
}


def check_augmented_run(workdir, browser):
    """The augmented run of a finished workflow with ``AUGMENTED_CONFIG``'s augmentation
    (tests/test_resampling.py runs it, with a resampled run and a fusion beside)."""
    listed = pd.read_parquet(workdir / "results/demo/augmented/sad_noise/copies.parquet")
    assert len(listed) == 10 and set(listed["label"]) == {"sad"} and listed["source"].nunique() == 5
    table = pd.read_parquet(workdir / "results/demo/augmented/sad_noise/tables/prosody.parquet")
    assert sorted(table["id"]) == sorted(listed["id"])
    clips = pd.read_parquet(workdir / "results/demo/features/prosody.parquet").set_index("id")
    assert not np.allclose(table["f0_mean"], clips.loc[table["source"], "f0_mean"])  # transformed audio
    run = workdir / "results/demo/runs/prosody-lr_aug"
    metrics = json.loads((run / "metrics.json").read_text())
    speaker_of = listed.set_index("id")["speaker"]
    for fold in metrics["folds"]:  # only the copies of training speakers' clips
        assert fold["train_per_label"]["copies"]["sad"] == int(
            (~speaker_of.isin(fold["test_speakers"])).sum()
        )
    predictions = pd.read_parquet(run / "predictions.parquet")
    assert len(predictions) == 40 and not predictions["id"].str.contains("~").any()
    card = (run / "model_card.md").read_text()
    assert "10 augmented copies (`sad_noise`: noise, fade)" in card and "| after augmentation |" in card
    browser.get((workdir / "results/report.html").as_uri())
    details = browser.find_element("id", "run-demo-prosody-lr_aug")
    details.find_element("tag name", "summary").click()
    text = details.text
    said = "augmented copies of training clips (sad_noise: noise, fade; classes sad; 5 clips per class;"
    assert f"{said} 2 copies per clip)" in text
    assert "before → after augmentation" in text
