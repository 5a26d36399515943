import numpy as np
import pytest

from serflow.evaluation import bootstrap_interval, cross_val_predict_proba, make_folds, score
from serflow.models import ESTIMATORS, make_pipeline


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


@pytest.mark.parametrize("kind", ESTIMATORS)
def test_every_model_cross_validates_deterministically(kind):
    x, y, groups = blobs()
    folds = make_folds(y, groups, "loso")
    params = {"hidden_layer_sizes": (16,), "max_iter": 2000} if kind == "mlp" else {}
    if kind in ("random_forest", "xgboost"):
        params["n_estimators"] = 20
    proba, fold_of = cross_val_predict_proba(make_pipeline(kind, params), x, y, folds, 3)
    again, _ = cross_val_predict_proba(make_pipeline(kind, params), x, y, folds, 3)
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
    assert bootstrap_interval(y, pred, lambda a, b: np.mean(a == b), 100, seed=1) == bootstrap_interval(
        y, pred, lambda a, b: np.mean(a == b), 100, seed=1
    )
