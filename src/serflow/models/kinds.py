"""Model kinds: what the config's ``kind`` names, with the traits the rest reads from it.

Importing this module imports no scikit-learn (the plan reads the traits at every
Snakemake start); each kind's ``make`` imports its library. Pipelines, searches and
fitting: ``serflow.models.pipeline``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def _tuples(params: dict) -> dict:
    # YAML has no tuples; scikit-learn wants hidden_layer_sizes as one.
    return {
        k: tuple(v) if k == "hidden_layer_sizes" and isinstance(v, list) else v for k, v in params.items()
    }


@dataclass(frozen=True)
class ModelKind:
    """One kind of model, named by the config's ``kind``.

    ``make(params, threads)`` returns an unfitted estimator with library threads bound to
    ``threads``. Traits: ``seeded`` (takes ``random_state``), ``class_weight`` (``"param"``:
    the estimator's own ``class_weight``; ``"sample"``: balanced through sample weights;
    None: not supported) and ``prefix`` (where a search addresses its parameters inside
    the pipeline). Importances are read from the fitted estimator (``feature_importances_``
    or ``coef_``); ``importance`` says what they mean. ``row_space(params)`` says whether
    the fitted model depends on the training rows only through their span (L2-penalised
    linear models): then ``RowSpace`` may shrink the features to at most one per clip.
    """

    name: str
    make: Callable[[dict, int], object]
    seeded: bool = False
    class_weight: str | None = None
    prefix: str = "model__"
    importance: str | None = None
    row_space: Callable[[dict], bool] = lambda params: False
    #: A parameter a search may walk in increasing order, each fit starting from the
    #: previous solution (the estimator's ``warm_start``): a regularisation path.
    path: str | None = None
    #: The frame-level extractor (``frames``, ``waveform``) whose table, padded to
    #: ``pad_frames`` (the kind's ``n_frames`` parameter), it takes and standardises itself:
    #: no scaler in front, no speaker or test-domain normalisation.
    frames: str | None = None
    #: ``fit`` takes the training rows' speakers as ``groups`` (e.g. for early stopping) and
    #: which rows are augmented copies as ``origin`` (``pipeline.copy_origin``; never held out).
    fit_groups: bool = False
    #: (module, extra): a module the kind needs, and the install extra that brings it.
    needs: tuple[str, str] | None = None
    #: Its training jobs ask for the config's ``gpus`` (the estimator uses a GPU where it gets one).
    gpu: bool = False


def _calibrated_svc(params, threads):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    # SVC(probability=True) is deprecated since scikit-learn 1.9; this is its replacement.
    return CalibratedClassifierCV(SVC(**params), ensemble=False)


def _logreg(params, threads):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(**{"max_iter": 2000, **params})


def _random_forest(params, threads):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_jobs=threads, **params)


def _mlp(params, threads):
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(**params)


def _majority(params, threads):
    from sklearn.dummy import DummyClassifier

    return DummyClassifier(strategy="most_frequent", **params)


def _xgboost(params, threads):
    from xgboost import XGBClassifier

    return XGBClassifier(n_jobs=threads, **params)


MODEL_KINDS: dict[str, ModelKind] = {}


def _cnn(params, threads):
    from serflow.models.cnn import LogMelCNN

    return LogMelCNN(threads=threads, **params)


def _finetune(params, threads):
    from serflow.models.finetune import SpeechFineTuner

    return SpeechFineTuner(threads=threads, **params)


def register_model_kind(kind: ModelKind) -> ModelKind:
    """Add (or replace) a model kind (the config schema's ``kind`` enum lists the built-in ones)."""
    MODEL_KINDS[kind.name] = kind
    return kind


for _kind in (
    ModelKind(
        "svc",
        _calibrated_svc,
        class_weight="param",
        prefix="model__estimator__",
        importance="mean |coefficient|",
        row_space=lambda p: p.get("kernel", "rbf") == "linear",
    ),
    ModelKind(
        "random_forest",
        _random_forest,
        seeded=True,
        class_weight="param",
        importance="mean decrease in impurity",
    ),
    ModelKind(
        "logreg",
        _logreg,
        seeded=True,
        class_weight="param",
        importance="mean |coefficient|",
        row_space=lambda p: p.get("penalty", "l2") == "l2" and not p.get("l1_ratio"),
        path="C",
    ),
    ModelKind("xgboost", _xgboost, seeded=True, class_weight="sample", importance="gain"),
    ModelKind("mlp", _mlp, seeded=True, class_weight="sample"),
    ModelKind("majority", _majority),
    ModelKind(
        "cnn",
        _cnn,
        seeded=True,
        class_weight="param",
        frames="frames",
        fit_groups=True,
        needs=("torch", "deep"),
        gpu=True,
    ),
    ModelKind(
        "finetune",
        _finetune,
        seeded=True,
        class_weight="param",
        frames="waveform",
        fit_groups=True,
        needs=("transformers", "deep"),
        gpu=True,
    ),
):
    register_model_kind(_kind)


def model_kind(name: str) -> ModelKind:
    if name not in MODEL_KINDS:
        raise ValueError(f"unknown model {name!r} (use one of {', '.join(MODEL_KINDS)})")
    return MODEL_KINDS[name]


def make_estimator(kind: str, params: dict | None = None, threads: int = 1, random_state: int = 0):
    """An unfitted estimator of ``kind`` with ``params``; library threads bound to ``threads``."""
    spec = model_kind(kind)
    params = _tuples(dict(params or {}))
    if spec.seeded:
        params.setdefault("random_state", random_state)
    return spec.make(params, threads)


def param_prefix(kind: str) -> str:
    """Prefix that addresses the estimator's parameters inside the pipeline."""
    return model_kind(kind).prefix


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

    Read from the fitted estimator as scikit-learn's feature selection does: its
    ``feature_importances_`` (trees), else mean |``coef_``| over classes on standardised
    features (linear models; a calibrated SVC's own SVC, linear kernel only). The kind's
    ``importance`` names what they are; kinds without one have none.
    """
    meaning = model_kind(kind).importance
    pipeline = getattr(model, "best_estimator_", model)
    steps = getattr(pipeline, "named_steps", {})
    est = steps.get("model", pipeline)
    if hasattr(est, "calibrated_classifiers_"):
        est = est.calibrated_classifiers_[0].estimator
    values = getattr(est, "feature_importances_", None)
    if values is None:
        try:
            coef = np.atleast_2d(est.coef_)
        except (AttributeError, ValueError):  # SVC.coef_ exists only for the linear kernel
            return None
        basis = getattr(steps.get("project"), "basis_", None)
        if basis is not None:  # back from the row-space coordinates to the columns
            coef = coef @ basis.T
        values = np.abs(coef).mean(axis=0)
    if meaning is None:
        return None
    values = np.asarray(values, dtype=float)
    if "groups" in steps:  # columns left out by the chosen groups count 0
        full = np.zeros(len(feature_names))
        full[steps["groups"].index_] = values
        values = full
    if values.shape != (len(feature_names),):
        return None
    return meaning, values
