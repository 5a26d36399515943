"""Model pipelines: scaling fitted on training data only, then one estimator."""

from __future__ import annotations

from sklearn.calibration import CalibratedClassifierCV
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

ESTIMATORS = ("svc", "random_forest", "logreg", "xgboost", "mlp", "majority")
_SEEDED = {"random_forest", "logreg", "xgboost", "mlp"}


def make_estimator(kind: str, params: dict | None = None, threads: int = 1, random_state: int = 0):
    """An unfitted estimator of ``kind`` with ``params``; library threads bound to ``threads``."""
    params = dict(params or {})
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
