import warnings

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from serflow.evaluation.protocols import (
    bootstrap_accuracy_uar,
    make_folds,
    resolve_protocol,
    score,
)
from serflow.models.kinds import MODEL_KINDS, chosen_params, feature_importance
from serflow.models.pipeline import fit_model, inner_folds, make_pipeline


def cross_val_predict_proba(estimator, x, y, folds, n_classes: int, groups=None):
    """Out-of-fold class probabilities, fold numbers and the fitted model of each fold.

    ``y`` holds integer codes 0..n_classes-1. ``estimator`` is an unfitted
    scikit-learn estimator (cloned per fold) or a callable ``(x, y, groups) -> fitted
    model``. Every statistic (scaling, selection, search) is fitted on the training
    indices of a fold only. A training fold that lacks some classes is re-coded to
    0..k-1 for it, so every estimator sees contiguous codes.
    """
    from sklearn.base import clone

    if callable(getattr(estimator, "fit", None)):
        template = estimator
        estimator = lambda xs, ys, gs: clone(template).fit(xs, ys)  # noqa: E731
    groups = None if groups is None else np.asarray(groups)
    proba = np.zeros((len(y), n_classes))
    fold_of = np.full(len(y), -1)
    fitted = []
    for k, (train, test) in enumerate(folds):
        present, local = np.unique(y[train], return_inverse=True)
        model = estimator(x[train], local, None if groups is None else groups[train])
        proba[np.ix_(test, present)] = model.predict_proba(x[test])
        fold_of[test] = k
        fitted.append(model)
    return proba, fold_of, fitted


def blobs(n_per=20, n_classes=3, n_speakers=4, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per)
    speakers = np.tile(np.arange(n_speakers), len(y) // n_speakers + 1)[: len(y)]
    x = rng.normal(size=(len(y), 5)) + y[:, None] * 1.5 + speakers[:, None] * 0.3
    return x, y, np.array([f"s{s}" for s in speakers])


def test_speaker_folds_never_share_a_speaker():
    _, y, groups = blobs()
    for protocol, n in (("loso", 4), ("group_kfold", 2)):
        folds = make_folds(y, groups, protocol, n_splits=2)
        assert len(folds) == n
        for train, test in folds:
            assert not set(groups[train]) & set(groups[test])
        assert sorted(np.concatenate([t for _, t in folds])) == list(range(len(y)))
    strat = make_folds(y, groups, "stratified_kfold", n_splits=5)
    assert any(set(groups[tr]) & set(groups[te]) for tr, te in strat)  # speaker-dependent
    with pytest.raises(ValueError, match="two speakers"):
        make_folds(y, np.zeros(len(y)), "loso")


def test_scaler_is_fitted_on_the_training_fold_only():
    x, y, groups = blobs()
    x[groups == "s0"] += 100.0  # the held-out speaker is far off
    train, test = next((tr, te) for tr, te in make_folds(y, groups, "loso") if set(groups[te]) == {"s0"})
    model = make_pipeline("logreg").fit(x[train], y[train])
    scaler = model.named_steps["scale"]
    np.testing.assert_allclose(scaler.mean_, x[train].mean(axis=0))
    assert np.all(np.abs(scaler.mean_ - x.mean(axis=0)) > 1.0)


@pytest.mark.parametrize("kind", [k for k, v in MODEL_KINDS.items() if not v.frames])  # cnn: test_cnn.py
def test_every_model_cross_validates_deterministically(kind):
    x, y, groups = blobs()
    folds = make_folds(y, groups, "loso")
    params = {"hidden_layer_sizes": (16,), "max_iter": 2000} if kind == "mlp" else {}
    if kind in ("random_forest", "xgboost"):
        params["n_estimators"] = 20
    proba, fold_of, _ = cross_val_predict_proba(make_pipeline(kind, params), x, y, folds, 3)
    again, _, _ = cross_val_predict_proba(make_pipeline(kind, params), x, y, folds, 3)
    np.testing.assert_array_equal(proba, again)
    assert (fold_of >= 0).all() and np.allclose(proba.sum(axis=1), 1.0)
    uar = score(y, proba.argmax(axis=1), ["a", "b", "c"], n_boot=50)["uar"]
    if kind == "majority":
        assert uar == pytest.approx(1 / 3)
    else:
        assert uar > 0.6


def test_score_values_and_intervals():
    y = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    perfect = score(y, y, ["a", "b", "c"], n_boot=200)
    assert perfect["uar"] == perfect["accuracy"] == perfect["macro_f1"] == 1.0
    assert perfect["uar_ci95"] == (1.0, 1.0)
    pred = np.array([0, 1, 1, 1, 2, 2, 0, 2])
    s = score(y, pred, ["a", "b", "c"], n_boot=200)
    assert s["accuracy"] == pytest.approx(6 / 8)
    assert s["uar"] == pytest.approx((0.5 + 1.0 + 0.75) / 3)
    assert s["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 3]]
    assert s["per_class"]["c"]["recall"] == pytest.approx(0.75)
    lo, hi = s["uar_ci95"]
    assert lo <= s["uar"] <= hi and lo < hi
    assert score(y, pred, ["a", "b", "c"], n_boot=100, seed=1) == score(
        y, pred, ["a", "b", "c"], n_boot=100, seed=1
    )


def test_protocols_auto_random_and_dataset_split():
    _, y, groups = blobs()
    assert resolve_protocol("auto", groups) == "loso"
    assert resolve_protocol("auto", None) == "stratified_kfold"
    assert resolve_protocol("auto", [*groups[:-1], None]) == "stratified_kfold"
    assert resolve_protocol("group_kfold", groups) == "group_kfold"
    [(train, test)] = make_folds(y, None, "random_split", test_size=0.25, random_state=42)
    assert len(test) == 15 and not set(train) & set(test) and len(train) + len(test) == len(y)
    again = make_folds(y, None, "random_split", test_size=0.25, random_state=42)[0][1]
    assert again.tolist() == test.tolist()
    assert make_folds(y, None, "random_split", test_size=0.25, random_state=7)[0][1].tolist() != test.tolist()
    splits = np.where(np.arange(len(y)) % 5 == 0, "test", "train")
    [(train, test)] = make_folds(y, None, "dataset_split", splits=splits)
    assert set(splits[test]) == {"test"} and set(splits[train]) == {"train"}
    with pytest.raises(ValueError, match="both the train and the test"):
        make_folds(y, None, "dataset_split", splits=np.full(len(y), "train"))
    with pytest.raises(ValueError, match="speaker of every clip"):
        make_folds(y, [None] * len(y), "loso")


def test_vectorised_bootstrap_matches_scikit_learn_per_resample():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 4, 60)
    pred = np.where(rng.random(60) < 0.6, y, rng.integers(0, 4, 60))
    acc, uar = bootstrap_accuracy_uar(y, pred, 4, n_boot=50, seed=3)
    idx = np.random.default_rng(3).integers(0, 60, (50, 60))  # the same draws
    for b in range(50):
        assert acc[b] == pytest.approx(np.mean(y[idx[b]] == pred[idx[b]]))
        with warnings.catch_warnings():  # a resample may lack a predicted class
            warnings.simplefilter("ignore", UserWarning)
            assert uar[b] == pytest.approx(balanced_accuracy_score(y[idx[b]], pred[idx[b]]))


def test_inner_search_is_grouped_and_scaler_sees_training_fold_only():
    x, y, groups = blobs(n_per=24, n_speakers=6)
    x[groups == "s0"] += 50.0
    folds = make_folds(y, groups, "loso")
    for train, _ in folds[:2]:
        for itr, ite in inner_folds(y[train], groups[train], 3):
            assert not set(groups[train][itr]) & set(groups[train][ite])

    def fit(xs, ys, gs):
        return fit_model("logreg", xs, ys, gs, grid={"C": [0.01, 1.0]}, inner_splits=3)

    _, _, fitted = cross_val_predict_proba(fit, x, y, folds, 3, groups)
    for (train, _), model in zip(folds, fitted):
        np.testing.assert_allclose(model.best_estimator_.named_steps["scale"].mean_, x[train].mean(axis=0))
        assert chosen_params(model, "logreg")["C"] in (0.01, 1.0)
        assert all(len(set(groups[train][te]) & set(groups[train][tr])) == 0 for tr, te in model.cv)


def test_class_weight_and_missing_classes_in_a_training_fold():
    x, y, groups = blobs()
    keep = ~((y == 2) & (groups == "s0")) & ~((y == 2) & (groups != "s1"))  # class 2 only from s1
    x, y, groups = x[keep], y[keep], groups[keep]
    folds = make_folds(y, groups, "loso")
    for kind in ("xgboost", "svc", "mlp"):
        params = {"n_estimators": 10} if kind == "xgboost" else {"max_iter": 1000} if kind == "mlp" else {}
        proba, _, _ = cross_val_predict_proba(
            lambda xs, ys, gs, k=kind, p=params: fit_model(k, xs, ys, gs, params=p, class_weight="balanced"),
            x,
            y,
            folds,
            3,
            groups,
        )
        held_out_s1 = groups == "s1"
        assert np.all(proba[held_out_s1, 2] == 0)  # class 2 was absent from that training fold
        assert np.allclose(proba.sum(axis=1), 1.0)
    y_imb = np.where(np.arange(len(y)) < 6, 1, 0)
    plain = fit_model("xgboost", x, y_imb, params={"n_estimators": 5})
    weighted = fit_model("xgboost", x, y_imb, params={"n_estimators": 5}, class_weight="balanced")
    assert weighted.predict_proba(x)[:, 1].mean() > plain.predict_proba(x)[:, 1].mean()
    with pytest.raises(ValueError, match="takes no class_weight"):
        fit_model("majority", x, y, class_weight="balanced")


def test_feature_groups_are_chosen_inside_each_training_fold():
    x, y, groups = blobs(n_per=24, n_speakers=6)
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(len(y), 3))
    x = np.hstack([noise, x[:, :2]])  # prosody columns: noise; mfcc columns: the classes
    names = ["f0_mean", "energy_mean", "tempo_bpm", "mfcc00_mean", "mfcc01_mean"]
    column_groups = ["prosody"] * 3 + ["mfcc"] * 2
    choices = [["prosody"], ["mfcc"], ["all"]]
    folds = make_folds(y, groups, "loso")

    def fit(xs, ys, gs):
        return fit_model(
            "logreg", xs, ys, gs, grid={"C": [0.1]}, feature_groups=choices, column_groups=column_groups
        )

    _, _, fitted = cross_val_predict_proba(fit, x, y, folds, 3, groups)
    for (train, _), model in zip(folds, fitted):
        assert chosen_params(model, "logreg")["feature_groups"] in (["mfcc"], ["all"])
        assert all(len(set(groups[train][te]) & set(groups[train][tr])) == 0 for tr, te in model.cv)
        # the selector's choice was scored on inner folds: prosody alone is at chance
        scores = dict(
            zip(map(tuple, model.cv_results_["param_groups__groups"]), model.cv_results_["mean_test_score"])
        )
        assert scores[("prosody",)] < 0.6 < scores[("mfcc",)]
    fixed = fit_model("random_forest", x, y, feature_groups=[["prosody"]], column_groups=column_groups)
    assert chosen_params(fixed, "random_forest") == {}
    kind, values = feature_importance(fixed, "random_forest", names)
    assert values[3:].tolist() == [0.0, 0.0] and values[:3].sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"feature groups \['rhythm'\] select no column"):
        fit_model("logreg", x, y, feature_groups=[["rhythm"]], column_groups=column_groups)
    with pytest.raises(ValueError, match="unknown feature group"):
        fit_model("logreg", x, y, feature_groups=[["pitch"]], column_groups=column_groups)
    with pytest.raises(ValueError, match="needs column_groups"):
        fit_model("logreg", x, y, feature_groups=[["mfcc"]])


def test_row_space_projection_keeps_the_linear_model():
    from sklearn.linear_model import LogisticRegression

    from serflow.models.pipeline import RowSpace

    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 200))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    proj = RowSpace().fit(x)
    assert proj.basis_.shape == (200, 30) and np.allclose(proj.basis_.T @ proj.basis_, np.eye(30))
    full = LogisticRegression(C=0.5, tol=1e-10, max_iter=10000).fit(x, y)
    small = LogisticRegression(C=0.5, tol=1e-10, max_iter=10000).fit(proj.transform(x), y)
    np.testing.assert_allclose(small.coef_ @ proj.basis_.T, full.coef_, atol=1e-6)
    x_new = rng.normal(size=(10, 200))
    np.testing.assert_allclose(
        small.predict_proba(proj.transform(x_new)), full.predict_proba(x_new), atol=1e-6
    )
    assert RowSpace().fit(x[:, :20]).basis_ is None  # more clips than columns: nothing to gain


def test_path_search_walks_c_and_refits_the_best_from_scratch():
    from sklearn.base import clone

    from serflow.models.pipeline import PathSearch

    x, y, groups = blobs(n_per=20, n_speakers=5)
    x = np.hstack([x, np.random.default_rng(0).normal(size=(len(y), 60))])
    grid = {"C": [10.0, 0.001, 0.1]}  # not in order: ties go to the grid's first
    search = fit_model("logreg", x, y, groups, grid=grid)
    assert isinstance(search, PathSearch) and "project" in search.best_estimator_.named_steps
    mean = search.cv_results_["mean_test_score"]
    assert search.best_params_["model__C"] == grid["C"][int(np.flatnonzero(mean == mean.max())[0])]
    cold = clone(search.pipeline).set_params(**search.best_params_).fit(x, y)
    np.testing.assert_array_equal(cold.predict_proba(x), search.predict_proba(x))
    assert chosen_params(search, "logreg") == {"C": search.best_params_["model__C"]}
    assert all(len(set(groups[tr]) & set(groups[te])) == 0 for tr, te in search.cv)
    # several parameters, or a choice of feature groups: the ordinary grid search
    assert not isinstance(
        fit_model("logreg", x, y, groups, grid={"C": [0.1, 1.0], "tol": [1e-4]}), PathSearch
    )
