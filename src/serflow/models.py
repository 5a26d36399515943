"""Model pipelines: scaling fitted on training data only, then one estimator.

``fit_model`` adds what the config asks for around a pipeline: class balancing, a
choice among column groups, and a hyperparameter search whose inner folds are grouped
by speaker.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, GroupKFold, StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.class_weight import compute_sample_weight

from serflow.features import select_columns

ESTIMATORS = ("svc", "random_forest", "logreg", "xgboost", "mlp", "majority")
_SEEDED = {"random_forest", "logreg", "xgboost", "mlp"}
# Estimators with a class_weight parameter; the others are balanced with sample weights.
_CLASS_WEIGHT_PARAM = {"svc", "random_forest", "logreg"}
_SAMPLE_WEIGHTED = {"xgboost", "mlp"}


def _tuples(params: dict) -> dict:
    # YAML has no tuples; scikit-learn wants hidden_layer_sizes as one.
    return {
        k: tuple(v) if k == "hidden_layer_sizes" and isinstance(v, list) else v for k, v in params.items()
    }


def make_estimator(kind: str, params: dict | None = None, threads: int = 1, random_state: int = 0):
    """An unfitted estimator of ``kind`` with ``params``; library threads bound to ``threads``."""
    params = _tuples(dict(params or {}))
    if kind in _SEEDED:
        params.setdefault("random_state", random_state)
    if kind == "svc":
        # SVC(probability=True) is deprecated since scikit-learn 1.9; this is its replacement.
        return CalibratedClassifierCV(SVC(**params), ensemble=False)
    if kind == "random_forest":
        return RandomForestClassifier(n_jobs=threads, **params)
    if kind == "logreg":
        params.setdefault("max_iter", 2000)
        return LogisticRegression(**params)
    if kind == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(n_jobs=threads, **params)
    if kind == "mlp":
        return MLPClassifier(**params)
    if kind == "majority":
        return DummyClassifier(strategy="most_frequent", **params)
    raise ValueError(f"unknown model {kind!r} (use one of {', '.join(ESTIMATORS)})")


class GroupSelector(TransformerMixin, BaseEstimator):
    """Keep the columns (named ``feature_names``) of the feature ``groups``; all of them
    when ``groups`` is None. A pipeline step, so a search can choose ``groups``."""

    def __init__(self, feature_names=(), groups=None):
        self.feature_names = feature_names
        self.groups = groups

    def fit(self, x, y=None):
        n = np.shape(x)[1]
        if len(self.feature_names) != n:
            raise ValueError(f"{len(self.feature_names)} feature names for {n} columns")
        if self.groups is None:
            self.index_ = np.arange(n)
            return self
        chosen = set(select_columns(self.feature_names, self.groups))
        self.index_ = np.array([i for i, name in enumerate(self.feature_names) if name in chosen], dtype=int)
        if not self.index_.size:
            raise ValueError(f"feature groups {list(self.groups)} select no column")
        return self

    def transform(self, x):
        return np.asarray(x)[:, self.index_]


def make_pipeline(
    kind: str, params: dict | None = None, threads: int = 1, random_state: int = 0, feature_names=None
) -> Pipeline:
    """StandardScaler then the estimator: fitted together, so test folds never reach the scaler.

    With ``feature_names`` a ``GroupSelector`` step named ``groups`` comes first.
    """
    steps = [("scale", StandardScaler()), ("model", make_estimator(kind, params, threads, random_state))]
    if feature_names is not None:
        steps.insert(0, ("groups", GroupSelector(list(feature_names))))
    return Pipeline(steps)


def param_prefix(kind: str) -> str:
    """Prefix that addresses the estimator's parameters inside the pipeline."""
    return "model__estimator__" if kind == "svc" else "model__"


def inner_folds(y, groups=None, n_splits: int = 3, random_state: int = 0):
    """Folds for a search inside one training set: grouped by speaker when speakers are known."""
    if groups is not None:
        n_groups = len(set(groups))
        if n_groups >= 2:
            return list(GroupKFold(n_splits=min(n_splits, n_groups)).split(np.zeros(len(y)), y, groups))
    n = max(2, min(n_splits, int(np.bincount(y).min())))
    return list(
        StratifiedKFold(n_splits=n, shuffle=True, random_state=random_state).split(np.zeros(len(y)), y)
    )


def fit_model(
    kind: str,
    x,
    y,
    groups=None,
    params: dict | None = None,
    grid: dict | None = None,
    class_weight: str | None = None,
    threads: int = 1,
    random_state: int = 0,
    inner_splits: int = 3,
    feature_groups=None,
    feature_names=None,
):
    """Fit ``make_pipeline(kind, params)`` on (x, y).

    ``class_weight='balanced'`` weights classes inversely to their frequency.
    ``feature_groups`` (a list of lists of group names, with ``feature_names`` naming
    x's columns) restricts the columns to one list, chosen in the search when it holds
    several. With a ``grid`` ({parameter: [values]}) or several ``feature_groups``, the
    choice is made by UAR over ``inner_splits`` folds of (x, y) grouped by speaker, then
    refitted on all of it: a ``GridSearchCV`` is returned (``best_params_`` holds the choice).
    """
    params = dict(params or {})
    grid = dict(grid or {})
    if feature_groups and feature_names is None:
        raise ValueError("feature_groups needs feature_names")
    fit_params = {}
    if class_weight:
        if kind in _CLASS_WEIGHT_PARAM:
            params["class_weight"] = class_weight
        elif kind in _SAMPLE_WEIGHTED:
            fit_params["model__sample_weight"] = compute_sample_weight(class_weight, y)
        else:
            raise ValueError(f"model {kind!r} takes no class_weight")
    pipeline = make_pipeline(kind, params, threads, random_state, feature_names if feature_groups else None)
    choices = [tuple(g) for g in feature_groups or []]
    if len(choices) == 1:
        pipeline.set_params(groups__groups=choices[0])
    if not grid and len(choices) < 2:
        return pipeline.fit(x, y, **fit_params)
    prefix = param_prefix(kind)
    space = {prefix + k: [_tuples({k: v})[k] for v in values] for k, values in grid.items()}
    if len(choices) > 1:
        space["groups__groups"] = choices
    search = GridSearchCV(
        pipeline,
        space,
        scoring="balanced_accuracy",
        cv=inner_folds(y, groups, inner_splits, random_state),
        n_jobs=1,
        error_score="raise",
    )
    return search.fit(x, y, **fit_params)


def chosen_params(model, kind: str) -> dict:
    """The parameters a search chose (names as in the config), or {} without a search."""
    best = getattr(model, "best_params_", None) or {}
    prefix = param_prefix(kind)
    return {
        ("feature_groups" if k == "groups__groups" else k[len(prefix) :]): (
            list(v) if isinstance(v, tuple) else v
        )
        for k, v in best.items()
    }


def feature_importance(model, kind: str, feature_names) -> tuple[str, np.ndarray] | None:
    """(what the values mean, one value per feature) of a fitted model, or None.

    Trees: XGBoost gain, random-forest mean decrease in impurity. Linear models
    (logreg, linear-kernel svc): mean |coefficient| over classes, on standardised
    features. Other models have none.
    """
    pipeline = getattr(model, "best_estimator_", model)
    steps = getattr(pipeline, "named_steps", {})
    est = steps.get("model", pipeline)
    if kind == "xgboost":
        kind_name, values = "gain", est.feature_importances_
    elif kind == "random_forest":
        kind_name, values = "mean decrease in impurity", est.feature_importances_
    elif kind == "logreg":
        kind_name, values = "mean |coefficient|", np.abs(est.coef_).mean(axis=0)
    elif kind == "svc" and est.calibrated_classifiers_[0].estimator.kernel == "linear":
        kind_name, values = (
            "mean |coefficient|",
            np.abs(est.calibrated_classifiers_[0].estimator.coef_).mean(axis=0),
        )
    else:
        return None
    values = np.asarray(values, dtype=float)
    if "groups" in steps:  # columns left out by the chosen groups count 0
        full = np.zeros(len(feature_names))
        full[steps["groups"].index_] = values
        values = full
    if values.shape != (len(feature_names),):
        return None
    return kind_name, values


def speaker_standardize(x, speakers) -> np.ndarray:
    """Standardise each speaker's rows with that speaker's own mean and std.

    Labels are never used, so the held-out speaker of a fold may be normalised with
    its own clips. Constant columns of a speaker become 0.
    """
    x = np.asarray(x, dtype=np.float64)
    speakers = np.asarray(speakers)
    out = np.empty_like(x)
    for spk in np.unique(speakers):
        rows = speakers == spk
        mean, std = x[rows].mean(axis=0), x[rows].std(axis=0)
        out[rows] = (x[rows] - mean) / np.where(std > 0, std, 1.0)
    return out
