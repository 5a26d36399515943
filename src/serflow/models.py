"""Model pipelines: scaling fitted on training data only, then one estimator.

``fit_model`` adds what the config asks for around a pipeline: class balancing and
a hyperparameter search whose inner folds are grouped by speaker.
"""

from __future__ import annotations

import numpy as np
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


def make_pipeline(kind: str, params: dict | None = None, threads: int = 1, random_state: int = 0) -> Pipeline:
    """StandardScaler then the estimator: fitted together, so test folds never reach the scaler."""
    return Pipeline(
        [("scale", StandardScaler()), ("model", make_estimator(kind, params, threads, random_state))]
    )


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
):
    """Fit ``make_pipeline(kind, params)`` on (x, y).

    ``class_weight='balanced'`` weights classes inversely to their frequency.
    With a ``grid`` ({parameter: [values]}), the parameters are chosen by UAR
    over ``inner_splits`` folds of (x, y) grouped by speaker, then refitted on all
    of it: a ``GridSearchCV`` is returned (``best_params_`` holds the choice).
    """
    params = dict(params or {})
    fit_params = {}
    if class_weight:
        if kind in _CLASS_WEIGHT_PARAM:
            params["class_weight"] = class_weight
        elif kind in _SAMPLE_WEIGHTED:
            fit_params["model__sample_weight"] = compute_sample_weight(class_weight, y)
        else:
            raise ValueError(f"model {kind!r} takes no class_weight")
    pipeline = make_pipeline(kind, params, threads, random_state)
    if not grid:
        return pipeline.fit(x, y, **fit_params)
    prefix = param_prefix(kind)
    search = GridSearchCV(
        pipeline,
        {prefix + k: [_tuples({k: v})[k] for v in values] for k, values in grid.items()},
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
    return {k[len(prefix) :]: (list(v) if isinstance(v, tuple) else v) for k, v in best.items()}


def feature_importance(model, kind: str, feature_names) -> tuple[str, np.ndarray] | None:
    """(what the values mean, one value per feature) of a fitted model, or None.

    Trees: XGBoost gain, random-forest mean decrease in impurity. Linear models
    (logreg, linear-kernel svc): mean |coefficient| over classes, on standardised
    features. Other models have none.
    """
    est = getattr(model, "best_estimator_", model)
    est = est.named_steps["model"] if hasattr(est, "named_steps") else est
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
