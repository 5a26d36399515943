"""One run (a feature set × a model): cross-validated evaluation, then a final refit.

Pure functions over a feature table (``serflow.tables`` layout: id, label, speaker,
split, then float features); the workflow's ``train`` rule only calls these.
"""

from __future__ import annotations

import functools
import json
import warnings
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from serflow.evaluation import (
    EVALUATION_DEFAULTS,
    SCORING_KEYS,
    SPEAKER_DEPENDENT,
    make_folds,
    resolve_protocol,
    score,
)
from serflow.models import chosen_params, feature_importance, fit_model, speaker_standardize
from serflow.runtime import Progress
from serflow.tables import ID_COLUMNS, package_versions

MODEL_PACKAGES = ("serflow", "scikit-learn", "xgboost", "numpy", "scipy", "pandas")


def load_table(path):
    """(feature table as a DataFrame, feature column names) from a Parquet feature table.

    The table's ``attrs["column_groups"]`` holds the group of each column (from its metadata).
    """
    import pandas as pd

    from serflow.tables import read_metadata

    table = pd.read_parquet(path)
    meta = read_metadata(path)
    table.attrs["column_groups"] = meta.get("column_groups", {})
    table.attrs["speakers_estimated"] = bool(meta.get("speakers_estimated"))
    return table, [c for c in table.columns if c not in ID_COLUMNS]


def _column_groups(table, columns) -> list[str] | None:
    groups = table.attrs.get("column_groups") or {}
    return [groups.get(c, "") for c in columns] if groups else None


def _model_kwargs(model: dict) -> dict:
    """The arguments of ``fit_model`` that a model config sets."""
    kwargs = {
        "params": model.get("params") or {},
        "grid": model.get("grid") or {},
        "class_weight": model.get("class_weight"),
    }
    if model.get("feature_groups"):
        kwargs["feature_groups"] = [list(g) for g in model["feature_groups"]]
    if model.get("scale") is False:
        kwargs["scale"] = False
    return kwargs


def feature_matrix(table, columns, speaker_norm: bool = False):
    """(float64 matrix of ``table``'s rows, how it was normalised).

    With ``speaker_norm`` each speaker's clips (labelled or not) are standardised with
    that speaker's statistics; when some clip has no speaker this falls back to the
    global scaling of the pipeline alone, and the returned note says so.
    """
    x = table[columns].to_numpy(dtype=np.float64)
    if not speaker_norm:
        return x, "none"
    if table.attrs.get("speakers_estimated"):
        # Clusters follow emotion as well as voice: normalising per cluster was measured to
        # destroy the emotion signal (issue 15), so it is never applied blindly
        # (``group_norm_choice`` lets the inner folds decide).
        return x, "none (requested, but the speakers are estimated groups: not applied)"
    if len(table) == 0 or table["speaker"].isna().any():
        return x, "none (requested, but not every clip has a speaker: global scaling only)"
    return speaker_standardize(x, table["speaker"].astype(str).to_numpy()), "per speaker"


#: Column groups of the two halves of ``group_norm_choice``'s matrix.
AS_IS, PER_GROUP = "as_is", "per_group"


def group_norm_choice(table, columns, model: dict) -> np.ndarray | None:
    """For ``speaker_norm`` over estimated speakers: the clips' features as they are, then
    normalised per estimated group, side by side (``AS_IS`` and ``PER_GROUP`` columns), for
    the inner folds to choose one half like ``feature_groups``. None where it does not apply
    (given speakers, no ``speaker_norm``, or the model's own ``feature_groups``)."""
    estimated = table.attrs.get("speakers_estimated") and len(table) and table["speaker"].notna().all()
    if not (model.get("speaker_norm") and estimated) or model.get("feature_groups"):
        return None
    x = table[columns].to_numpy(dtype=np.float64)
    return np.hstack([x, speaker_standardize(x, table["speaker"].astype(str).to_numpy())])


def _norm_choice_kwargs(n_columns: int) -> dict:
    return {
        "column_groups": [AS_IS] * n_columns + [PER_GROUP] * n_columns,
        "feature_groups": [[AS_IS], [PER_GROUP]],
    }


def standardize(x: np.ndarray) -> np.ndarray:
    """Columns to zero mean and unit variance with ``x``'s own statistics (constant columns to 0)."""
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)


def speaker_source(table) -> str:
    """``given``, ``estimated`` (``speakers: cluster``) or ``unknown`` (some clip has none)."""
    if table["speaker"].isna().any():
        return "unknown"
    return "estimated" if table.attrs.get("speakers_estimated") else "given"


def _speakers(table):
    s = table["speaker"]
    return None if s.isna().any() else s.astype(str).to_numpy()


def _strata(table):
    if "stratum" not in table:
        return None
    s = table["stratum"]
    return s.astype(object).where(s.notna(), None).to_numpy()


@dataclass
class RunData:
    """A run's labelled clips, their coding and outer folds: what every fold job shares."""

    labelled: object  # DataFrame of the labelled clips
    x: np.ndarray
    y: np.ndarray
    labels: list[str]
    groups: np.ndarray | None
    protocol: str
    folds: list
    norm: str
    evaluation: dict
    model: dict
    column_groups: list[str] | None
    norm_choice: bool = False  # x holds both halves of ``group_norm_choice``


def prepare_run(table, columns, model: dict, evaluation: dict | None = None) -> RunData:
    """The labelled clips, label coding, protocol and outer folds of one run."""
    ev = {**EVALUATION_DEFAULTS, **(evaluation or {})}
    both = group_norm_choice(table, columns, model)
    if both is not None:
        x_all, norm = both, "per estimated group or none, chosen in each training fold"
    else:
        x_all, norm = feature_matrix(table, columns, model.get("speaker_norm", False))
    has_label = table["label"].notna().to_numpy()
    labelled = table[has_label].reset_index(drop=True)
    labels = sorted(labelled["label"].astype(str).unique())
    if len(labels) < 2:
        raise ValueError(f"need at least two labels to train, found {labels}")
    y = labelled["label"].astype(str).map({lab: i for i, lab in enumerate(labels)}).to_numpy()
    groups = _speakers(labelled)
    asked, stratify = ev["protocol"], ev["stratify"]
    if table.attrs.get("speakers_estimated") and asked in ("auto", "group_kfold"):
        # Held-out folds of several groups with every label, like an unseen test split.
        asked, stratify = "group_kfold", True
    protocol = resolve_protocol(asked, groups)
    folds = make_folds(
        y,
        groups,
        protocol,
        n_splits=ev["n_splits"],
        random_state=ev["random_state"],
        test_size=ev["test_size"],
        stratify=stratify,
        splits=labelled["split"].astype(str).to_numpy(),
        strata=_strata(labelled),
    )
    return RunData(
        labelled, x_all[has_label], y, labels, groups, protocol, folds, norm, ev, model,
        _column_groups(table, columns), both is not None,
    )  # fmt: skip


def _fit_fold(run: RunData, k: int, threads: int):
    """(class probabilities of fold ``k``'s test clips, the parameters its search chose)."""
    train, test = run.folds[k]
    present, local = np.unique(run.y[train], return_inverse=True)
    # The model's own thread count wherever the fold runs (this process or a worker), so
    # that parallel and sequential runs compute the same numbers, bit for bit.
    x_train, x_test = run.x[train], run.x[test]
    if run.model.get("domain_norm"):  # each side with its own statistics, as train and test splits
        x_train, x_test = standardize(x_train), standardize(x_test)
    kwargs = {"column_groups": run.column_groups, **_model_kwargs(run.model)}
    if run.norm_choice:
        kwargs.update(_norm_choice_kwargs(x_train.shape[1] // 2))
    with threadpool_limits(limits=threads):
        fitted = fit_model(
            run.model["kind"],
            x_train,
            local,
            None if run.groups is None else run.groups[train],
            threads=threads,
            random_state=run.evaluation["random_state"],
            inner_splits=run.evaluation["inner_splits"],
            **kwargs,
        )
        proba = np.zeros((len(test), len(run.labels)))
        proba[:, present] = fitted.predict_proba(x_test)
    return proba, chosen_params(fitted, run.model["kind"])


def fit_folds(run: RunData, which=None, workers: int = 1, model_threads: int = 1) -> dict:
    """Fold number -> (test probabilities, chosen parameters) for the folds ``which`` (all).

    With ``workers`` > 1 the folds run in that many processes (joblib/loky), each with
    ``model_threads`` library threads; results equal a sequential run's.
    """
    from joblib import Parallel, delayed, parallel_config

    which = list(range(len(run.folds)) if which is None else which)
    progress = Progress(len(which), f"{run.model['kind']} folds", every_s=0.0)
    workers = max(1, min(workers, len(which)))
    out = {}
    if workers == 1:
        for k in which:
            out[k] = _fit_fold(run, k, model_threads)
            progress.step()
        return out
    with parallel_config(backend="loky", inner_max_num_threads=model_threads):
        results = Parallel(n_jobs=workers, return_as="generator")(
            delayed(_fit_fold)(run, k, model_threads) for k in which
        )
        for k, result in zip(which, results):
            out[k] = result
            progress.step()
    return out


def gather_run(run: RunData, results: dict, n_features: int):
    """Out-of-fold predictions (DataFrame) and the run's facts (protocol, folds, chosen
    parameters; a dict) from every fold's results: all that scoring needs."""
    import pandas as pd

    if sorted(results) != list(range(len(run.folds))):
        raise ValueError(f"results of folds {sorted(results)}, expected 0..{len(run.folds) - 1}")
    labelled, y, labels, groups, ev = run.labelled, run.y, run.labels, run.groups, run.evaluation
    proba = np.zeros((len(y), len(labels)))
    fold_of = np.full(len(y), -1)
    for k, (_, test) in enumerate(run.folds):
        proba[test] = results[k][0]
        fold_of[test] = k
    tested = fold_of >= 0
    pred = proba.argmax(axis=1)
    predictions = pd.DataFrame(
        {
            "id": labelled["id"].astype(str),
            "speaker": labelled["speaker"],
            "label": labelled["label"].astype(str),
            "fold": fold_of,
            "prediction": [labels[i] for i in pred],
        }
    )
    for i, lab in enumerate(labels):
        predictions[f"proba_{lab}"] = proba[:, i]
    predictions = predictions[tested].reset_index(drop=True)
    facts = {
        "protocol": run.protocol,
        "speaker_independent": run.protocol not in SPEAKER_DEPENDENT,
        "n_folds": len(run.folds),
        "n_clips": int(tested.sum()),
        "n_features": n_features,
        "n_speakers": None if groups is None else len(set(groups)),
        "speakers": speaker_source(labelled),
        "speaker_norm": run.norm,
        "labels": list(labels),
        "folds": [
            {
                "fold": k,
                "n_train": len(train),
                "n_test": len(test),
                "test_speakers": None if groups is None else sorted(set(groups[test])),
                "params": results[k][1],
            }
            for k, (train, test) in enumerate(run.folds)
        ],
        "model": {
            "kind": run.model["kind"],
            **_model_kwargs(run.model),
            "speaker_norm": bool(run.model.get("speaker_norm", False)),
            **({"domain_norm": True} if run.model.get("domain_norm") else {}),
        },
        # Neither the metric that picks the best run nor the interval settings shape a fit.
        "evaluation": {k: v for k, v in ev.items() if k not in SCORING_KEYS},
    }
    return predictions, facts


def score_run(predictions, facts: dict, n_bootstrap: int) -> dict:
    """A run's metrics: its ``facts`` with scores, bootstrap intervals and per-speaker
    scores of its out-of-fold ``predictions`` (``gather_run``'s outputs)."""
    labels = facts["labels"]
    code = {lab: i for i, lab in enumerate(labels)}
    y = predictions["label"].astype(str).map(code).to_numpy()
    pred = predictions["prediction"].astype(str).map(code).to_numpy()
    groups = None if facts["n_speakers"] is None else predictions["speaker"].astype(str).to_numpy()
    seed = facts["evaluation"]["random_state"]
    tail = ("folds", "model", "evaluation")
    return {
        **{k: v for k, v in facts.items() if k not in tail},
        **score(y, pred, labels, n_boot=n_bootstrap, seed=seed),
        "per_speaker": _per_speaker(y, pred, groups),
        "folds": facts["folds"],
        "model": facts["model"],
        "evaluation": {**facts["evaluation"], "n_bootstrap": n_bootstrap},
    }


def summarize_run(run: RunData, results: dict, n_features: int):
    """Out-of-fold predictions (DataFrame) and metrics (dict) from every fold's results."""
    predictions, facts = gather_run(run, results, n_features)
    return predictions, score_run(predictions, facts, run.evaluation["n_bootstrap"])


def evaluate_run(
    table, columns, model: dict, evaluation: dict | None = None, threads: int = 1, workers: int = 1
):
    """Out-of-fold predictions (DataFrame) and metrics (dict) of ``model`` on the labelled clips.

    ``model``: {"kind", "params", "grid", "class_weight", ...}; ``evaluation``: see
    ``EVALUATION_DEFAULTS``. Scaling, class weights and the grid search are fitted
    inside each training fold. ``workers`` processes fit the outer folds side by side,
    each with ``threads`` library threads; the results do not depend on ``workers``.
    """
    run = prepare_run(table, columns, model, evaluation)
    return summarize_run(run, fit_folds(run, workers=workers, model_threads=threads), len(columns))


def _per_speaker(y, pred, groups) -> dict:
    if groups is None:
        return {}
    from sklearn.metrics import balanced_accuracy_score

    out = {}
    for spk in sorted(set(groups)):
        m = groups == spk
        with warnings.catch_warnings():  # a speaker's clips need not cover every predicted class
            warnings.simplefilter("ignore", UserWarning)
            uar = float(balanced_accuracy_score(y[m], pred[m])) if len(set(y[m])) > 1 else None
        out[spk] = {"n": int(m.sum()), "accuracy": float(np.mean(y[m] == pred[m])), "uar": uar}
    return out


def fit_final(table, columns, model: dict, evaluation: dict | None = None, threads: int = 1, info=None):
    """Refit ``model`` on all labelled training clips; return (bundle, test predictions).

    The bundle (saved with joblib) holds the fitted model, the feature names, the
    label coding and package versions; test predictions cover the unlabelled clips.
    With the ``dataset_split`` protocol only the train split is used for the refit.
    """
    ev = {**EVALUATION_DEFAULTS, **(evaluation or {})}
    speaker_norm = bool(model.get("speaker_norm", False))
    both = group_norm_choice(table, columns, model)
    if both is None:
        x_all, norm = feature_matrix(table, columns, speaker_norm)
    is_train = table["label"].notna().to_numpy()
    if resolve_protocol(ev["protocol"], _speakers(table[is_train])) == "dataset_split":
        is_train &= (table["split"] == "train").to_numpy()
    train = table[is_train]
    unlabelled = table["label"].isna().to_numpy()
    labels = sorted(train["label"].astype(str).unique())
    y = train["label"].astype(str).map({lab: i for i, lab in enumerate(labels)}).to_numpy()
    fit = functools.partial(
        fit_model,
        model["kind"],
        y=y,
        groups=_speakers(train),
        threads=threads,
        random_state=ev["random_state"],
        inner_splits=ev["inner_splits"],
    )
    if both is not None:
        # The inner folds choose between the halves, as in each training fold; the saved
        # model is then fitted on the chosen one alone (the same search, the same pick).
        if model.get("domain_norm"):
            both = _domain_standardize(both, is_train, unlabelled)
        with threadpool_limits(limits=threads):
            search = fit(both[is_train], **{**_model_kwargs(model), **_norm_choice_kwargs(len(columns))})
        per_group = chosen_params(search, model["kind"]).get("feature_groups") == [PER_GROUP]
        x_all = both[:, len(columns) :] if per_group else both[:, : len(columns)]
        norm = f"{'per estimated group' if per_group else 'none'} (chosen by the inner folds)"
    elif model.get("domain_norm"):
        x_all = _domain_standardize(x_all, is_train, unlabelled)
    with threadpool_limits(limits=threads):  # the same numbers whatever the job's thread count
        fitted = fit(x_all[is_train], column_groups=_column_groups(table, columns), **_model_kwargs(model))
    raw = table.loc[is_train, columns].to_numpy(dtype=np.float64)
    bundle = {
        "model": fitted,
        "labels": labels,
        # Training statistics: global scaling of clips without enough of their speaker's clips.
        "feature_mean": raw.mean(axis=0),
        "feature_std": raw.std(axis=0),
        "training": {
            "n_clips": len(train),
            "clips_per_label": {lab: int(n) for lab, n in zip(labels, np.bincount(y, minlength=len(labels)))},
            "n_speakers": None if train["speaker"].isna().any() else int(train["speaker"].nunique()),
            "speakers": speaker_source(train),
        },
        "feature_names": list(columns),
        "column_groups": _column_groups(table, columns),
        "kind": model["kind"],
        "chosen_params": chosen_params(fitted, model["kind"]),
        "importance": feature_importance(fitted, model["kind"], columns),
        # A model whose inner folds chose per-group scaling normalises new clips per speaker.
        "speaker_norm": speaker_norm and not norm.startswith("none"),
        "speaker_norm_applied": norm,
        "domain_norm": bool(model.get("domain_norm")),
        "versions": package_versions(MODEL_PACKAGES),
        **(info or {}),
    }
    return bundle, predict(bundle, table[unlabelled], x_all[unlabelled])


def _domain_standardize(x, is_train, unlabelled) -> np.ndarray:
    """Training rows and unlabelled rows each standardised with their own statistics."""
    x = np.array(x)  # a table's matrix can be read-only
    x[is_train] = standardize(x[is_train])
    if unlabelled.sum() >= 2:
        x[unlabelled] = standardize(x[unlabelled])
    return x


def predict(bundle: dict, table, x=None):
    """Predicted labels and class probabilities of a saved model for a feature table's rows.

    A model trained with speaker normalisation normalises ``table``'s clips with
    their speakers' statistics over ``table`` (pass a table with every clip of each
    speaker), unless ``x``, the already prepared matrix of those rows, is given.
    """
    import pandas as pd

    missing = [c for c in bundle["feature_names"] if c not in table.columns]
    if missing:
        raise ValueError(f"feature table lacks {len(missing)} column(s) the model needs, e.g. {missing[:3]}")
    out = pd.DataFrame({"id": table["id"].astype(str).to_numpy()})
    labels = bundle["labels"]
    if x is None:
        x, _ = feature_matrix(table, bundle["feature_names"], bundle.get("speaker_norm", False))
    if len(table):
        proba = bundle["model"].predict_proba(x)
    else:
        proba = np.zeros((0, len(labels)))
    out["prediction"] = [labels[i] for i in proba.argmax(axis=1)] if len(table) else []
    for i, lab in enumerate(labels):
        out[f"proba_{lab}"] = proba[:, i]
    return out


def dumps_metrics(metrics: dict) -> str:
    """Stable JSON text of a metrics dict (same metrics, same bytes)."""
    return json.dumps(metrics, indent=2, ensure_ascii=False) + "\n"


def importance_table(bundle: dict):
    """Feature importance of a saved model as a DataFrame (feature, importance, type), largest first."""
    import pandas as pd

    if bundle.get("importance") is None:
        return pd.DataFrame({"feature": [], "importance": [], "type": []})
    kind, values = bundle["importance"]
    order = np.argsort(-values, kind="stable")
    return pd.DataFrame(
        {
            "feature": [bundle["feature_names"][i] for i in order],
            "importance": values[order],
            "type": kind,
        }
    )
