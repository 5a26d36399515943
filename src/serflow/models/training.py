"""One run (a feature set × a model): cross-validated evaluation, then a final refit.

Pure functions over a feature table (``serflow.features.tables`` layout: id, label, speaker,
split, then float features); the workflow's ``train`` rule only calls these.
"""

from __future__ import annotations

import functools
import json
import warnings
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from serflow.evaluation.protocols import (
    EVALUATION_DEFAULTS,
    SCORING_KEYS,
    SPEAKER_DEPENDENT,
    make_folds,
    resolve_protocol,
    score,
)
from serflow.features.tables import ID_COLUMNS, SOURCE_COLUMN, package_versions
from serflow.models.kinds import chosen_params, feature_importance
from serflow.models.normalisation import PER_GROUP, Normalisation, standardize
from serflow.models.pipeline import fit_model
from serflow.models.resampling import counts_after, fitted_resampler
from serflow.runtime import Progress

MODEL_PACKAGES = ("serflow", "scikit-learn", "xgboost", "numpy", "scipy", "pandas")


def load_table(path):
    """(feature table as a DataFrame, feature column names) from a Parquet feature table.

    The table's ``attrs["column_groups"]`` holds the group of each column (from its metadata).
    """
    import pandas as pd

    from serflow.features.tables import read_metadata

    table = pd.read_parquet(path)
    meta = read_metadata(path)
    table.attrs["column_groups"] = meta.get("column_groups", {})
    table.attrs["speakers_estimated"] = bool(meta.get("speakers_estimated"))
    return table, [c for c in table.columns if c not in ID_COLUMNS]


def load_copies(path, columns):
    """An augmented copies table (``serflow.augmentation``): id, source and ``columns``."""
    import pandas as pd

    return pd.read_parquet(path, columns=["id", SOURCE_COLUMN, *columns])


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
    if model.get("resample"):
        kwargs["resample"] = model["resample"]
    return kwargs


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
class Copies:
    """Augmented copies of a run's labelled clips: their rows (normalised as their sources'
    clips), labels, and the labelled row each was made from (``source``)."""

    x: np.ndarray
    y: np.ndarray
    source: np.ndarray


def _copies(norm: Normalisation, table, labelled, y, columns, copies) -> Copies | None:
    """The copies of ``labelled``'s clips (copies of other clips are dropped)."""
    import pandas as pd

    if copies is None or not len(copies):
        return None
    where = pd.Series(np.arange(len(labelled)), index=labelled["id"].astype(str).to_numpy())
    source = copies[SOURCE_COLUMN].astype(str).map(where)
    keep = source.notna().to_numpy()
    source = source[keep].to_numpy(dtype=int)
    raw = copies.loc[keep, list(columns)].to_numpy(dtype=np.float64)
    speakers = labelled["speaker"].astype(str).to_numpy()[source]
    return Copies(norm.copy_matrix(table, columns, raw, speakers), y[source], source)


def with_copies(x, y, groups, copies: Copies | None, rows: np.ndarray):
    """The training rows ``rows`` (of x, y, groups) then the copies of those clips, and each
    row's source position in the result (its own for clips): None without copies."""
    x_rows, y_rows = x[rows], y[rows]
    g_rows = None if groups is None else groups[rows]
    if copies is None:
        return x_rows, y_rows, g_rows, None
    position = np.full(len(y), -1)
    position[rows] = np.arange(len(rows))
    mine = position[copies.source] >= 0
    sources = np.concatenate([np.arange(len(rows)), position[copies.source[mine]]])
    x_rows = np.vstack([x_rows, copies.x[mine]])
    y_rows = np.concatenate([y_rows, copies.y[mine]])
    if groups is not None:
        g_rows = np.concatenate([g_rows, groups[copies.source[mine]]])
    return x_rows, y_rows, g_rows, sources


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
    norm: Normalisation  # with ``choice``, x holds both halves of ``Normalisation.matrix``
    evaluation: dict
    model: dict
    column_groups: list[str] | None
    copies: Copies | None = None


def prepare_run(table, columns, model: dict, evaluation: dict | None = None, copies=None) -> RunData:
    """The labelled clips, label coding, protocol and outer folds of one run.

    ``copies`` (``load_copies``): augmented copies of the table's clips, which join the
    training side of every fold that trains on their source clip (and nothing else).
    """
    ev = {**EVALUATION_DEFAULTS, **(evaluation or {})}
    norm = Normalisation.for_run(model, table)
    x_all = norm.matrix(table, columns)
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
        _column_groups(table, columns), _copies(norm, table, labelled, y, columns, copies),
    )  # fmt: skip


def _fit_fold(run: RunData, k: int, threads: int):
    """(class probabilities of fold ``k``'s test clips, the parameters its search chose,
    training clips per label before and after augmentation and resampling, or None without
    either). Only copies of the fold's training clips join its training side."""
    train, test = run.folds[k]
    x_train, y_train, g_train, sources = with_copies(run.x, run.y, run.groups, run.copies, train)
    present, local = np.unique(y_train, return_inverse=True)
    # The model's own thread count wherever the fold runs (this process or a worker), so
    # that parallel and sequential runs compute the same numbers, bit for bit.
    x_train, x_test = run.norm.fold_sides(x_train, run.x[test])
    kwargs = {"column_groups": run.column_groups, **_model_kwargs(run.model)}
    kwargs.update(run.norm.choice_kwargs(x_train.shape[1] // 2))
    with threadpool_limits(limits=threads):
        fitted = fit_model(
            run.model["kind"],
            x_train,
            local,
            g_train,
            threads=threads,
            random_state=run.evaluation["random_state"],
            inner_splits=run.evaluation["inner_splits"],
            sources=sources,
            **kwargs,
        )
        proba = np.zeros((len(test), len(run.labels)))
        proba[:, present] = fitted.predict_proba(x_test)
    counts = training_counts(fitted, local, present, run.labels, len(train), run.copies is not None)
    return proba, chosen_params(fitted, run.model["kind"]), counts


def training_counts(fitted, y, present, labels, n_clips: int, augmented: bool = False) -> dict | None:
    """{before, after[, copies]}: label -> training clips, where copies may join the training
    set (``augmented``: the rows of ``y`` past ``n_clips``) or the fitted model resampled it;
    else None."""
    sampler = fitted_resampler(fitted)
    if sampler is None and not augmented:
        return None
    as_labels = lambda counts: {labels[c]: int(n) for c, n in zip(present, counts)}  # noqa: E731
    before = np.bincount(y[:n_clips], minlength=len(present))
    given = np.bincount(y, minlength=len(present))
    after = given if sampler is None else counts_after(sampler, given)
    out = {"before": as_labels(before), "after": as_labels(after)}
    if augmented:
        out["copies"] = as_labels(given - before)
    return out


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
        "speaker_norm": run.norm.applied,
        "labels": list(labels),
        "folds": [
            {
                "fold": k,
                "n_train": len(train),
                "n_test": len(test),
                "test_speakers": None if groups is None else sorted(set(groups[test])),
                "params": results[k][1],
                # (fold outputs of an earlier serflow hold two items)
                **({"train_per_label": results[k][2]} if len(results[k]) > 2 and results[k][2] else {}),
            }
            for k, (train, test) in enumerate(run.folds)
        ],
        "model": {
            "kind": run.model["kind"],
            **_model_kwargs(run.model),
            "speaker_norm": bool(run.model.get("speaker_norm", False)),
            **({"domain_norm": True} if run.model.get("domain_norm") else {}),
            **({"augment": run.model["augment"]} if run.model.get("augment") else {}),
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


def fit_final(
    table, columns, model: dict, evaluation: dict | None = None, threads: int = 1, info=None, copies=None
):
    """Refit ``model`` on all labelled training clips; return (bundle, test predictions).

    The bundle (saved with joblib) holds the fitted model, its ``Normalisation``, the
    feature names, the label coding and package versions; test predictions cover the
    unlabelled clips. With the ``dataset_split`` protocol only the train split is used.
    ``copies`` (``load_copies``): augmented copies; those of the training clips join them.
    """
    ev = {**EVALUATION_DEFAULTS, **(evaluation or {})}
    norm = Normalisation.for_run(model, table)
    x_all = norm.matrix(table, columns)
    is_train = table["label"].notna().to_numpy()
    if resolve_protocol(ev["protocol"], _speakers(table[is_train])) == "dataset_split":
        is_train &= (table["split"] == "train").to_numpy()
    train = table[is_train]
    unlabelled = table["label"].isna().to_numpy()
    labels = sorted(train["label"].astype(str).unique())
    y = train["label"].astype(str).map({lab: i for i, lab in enumerate(labels)}).to_numpy()
    extra = _copies(norm, table, train.reset_index(drop=True), y, columns, copies)
    x_train, y_fit, groups, sources = with_copies(
        x_all[is_train], y, _speakers(train), extra, np.arange(len(train))
    )
    fit = functools.partial(
        fit_model,
        model["kind"],
        y=y_fit,
        groups=groups,
        threads=threads,
        random_state=ev["random_state"],
        inner_splits=ev["inner_splits"],
        sources=sources,
    )
    if norm.domain:
        x_train = standardize(x_train)
    per_group = None
    if norm.choice:
        # The inner folds choose between the halves, as in each training fold; the saved
        # model is then fitted on the chosen one alone (the same search, the same pick).
        with threadpool_limits(limits=threads):
            search = fit(x_train, **{**_model_kwargs(model), **norm.choice_kwargs(len(columns))})
        per_group = chosen_params(search, model["kind"]).get("feature_groups") == [PER_GROUP]
    raw = table.loc[is_train, columns].to_numpy(dtype=np.float64)
    norm = norm.fitted(raw, per_group)
    x_train, x_test = norm.select(x_train, len(columns)), norm.select(x_all[unlabelled], len(columns))
    if norm.domain:  # the unlabelled clips are the test domain
        x_test, _ = norm.per_domain(x_test, min_clips=1)
    with threadpool_limits(limits=threads):  # the same numbers whatever the job's thread count
        fitted = fit(x_train, column_groups=_column_groups(table, columns), **_model_kwargs(model))
    counts = training_counts(fitted, y_fit, np.arange(len(labels)), labels, len(train), extra is not None)
    bundle = {
        "model": fitted,
        "labels": labels,
        "normalisation": norm,
        "training": {
            "n_clips": len(train),
            "clips_per_label": {lab: int(n) for lab, n in zip(labels, np.bincount(y, minlength=len(labels)))},
            **({"clips_per_label_fitted": counts["after"]} if counts else {}),
            **({"copies_per_label": counts["copies"]} if counts and "copies" in counts else {}),
            "n_speakers": None if train["speaker"].isna().any() else int(train["speaker"].nunique()),
            "speakers": speaker_source(train),
        },
        "feature_names": list(columns),
        "column_groups": _column_groups(table, columns),
        "kind": model["kind"],
        "chosen_params": chosen_params(fitted, model["kind"]),
        "importance": feature_importance(fitted, model["kind"], columns),
        "versions": package_versions(MODEL_PACKAGES),
        **(info or {}),
    }
    return bundle, _predictions(bundle, table[unlabelled], x_test)


def predict(bundle: dict, table):
    """Predicted labels and class probabilities of a saved model for a feature table's rows.

    The rows are normalised as the workflow normalised its test clips: per speaker over
    ``table`` (pass every clip of each speaker; clips without a speaker are scaled with
    the training statistics) and, for a ``domain_norm`` model, as one test domain.
    """
    missing = [c for c in bundle["feature_names"] if c not in table.columns]
    if missing:
        raise ValueError(f"feature table lacks {len(missing)} column(s) the model needs, e.g. {missing[:3]}")
    norm = Normalisation.from_bundle(bundle)
    speakers = table["speaker"].to_numpy(dtype=object) if "speaker" in table else None
    x, _, _ = norm.transform(table[bundle["feature_names"]].to_numpy(dtype=np.float64), speakers, "global", 1)
    return _predictions(bundle, table, x)


def _predictions(bundle: dict, table, x):
    import pandas as pd

    labels = bundle["labels"]
    out = pd.DataFrame({"id": table["id"].astype(str).to_numpy()})
    proba = bundle["model"].predict_proba(x) if len(table) else np.zeros((0, len(labels)))
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
