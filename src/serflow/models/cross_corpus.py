"""Cross-corpus evaluation: a run trained on one corpus (or several pooled) and tested on another.

Labels are those after each dataset's ``label_map``; a pair keeps the labels both corpora
have, and the clips of other labels are dropped (and counted). The model is fitted as the
run's final refit (``training.fit_final``: scaling, class weights, the grid's inner folds)
on the training corpus, then predicts every clip of the test corpus as ``serflow predict``
would (speaker normalisation per speaker of the test corpus, test-domain normalisation over
it) and is scored on its clips of the shared labels. The diagonal is each corpus's own
cross-validated score. With augmentation, the training corpus's copies of its fitted clips
join them; a test corpus's copies are never used. ``compare_cells`` pairs the runs of each
cell on the same test clips.
"""

from __future__ import annotations

import numpy as np


def check_columns(tables: dict) -> list[str]:
    """The feature columns every table shares in the same order, or ValueError naming the first difference."""
    from serflow.features.tables import ID_COLUMNS

    names = list(tables)
    first = [c for c in tables[names[0]].columns if c not in ID_COLUMNS]
    for name in names[1:]:
        other = [c for c in tables[name].columns if c not in ID_COLUMNS]
        if other != first:
            diff = sorted(set(first) ^ set(other))[:3] or ["(the same columns in another order)"]
            raise ValueError(
                f"datasets {names[0]} and {name} have different feature columns (e.g. {', '.join(diff)}):"
                " cross-corpus runs need the same extractor settings on both"
            )
    return first


def _labelled(table, labels):
    keep = table["label"].notna() & table["label"].astype(str).isin(labels)
    return table[keep].reset_index(drop=True)


def pooled(tables: dict):
    """Several corpora as one table; ids and speakers prefixed with the dataset's name."""
    import pandas as pd

    parts = []
    for name, t in tables.items():
        t = t.assign(id=name + "/" + t["id"].astype(str))
        t["speaker"] = t["speaker"].map(lambda s, n=name: None if s is None or s != s else f"{n}/{s}")
        parts.append(t)
    out = pd.concat(parts, ignore_index=True)
    # concat keeps attrs only where every table's are equal
    first = next(iter(tables.values()))
    out.attrs["column_groups"] = first.attrs.get("column_groups", {})
    out.attrs["speakers_estimated"] = any(t.attrs.get("speakers_estimated") for t in tables.values())
    return out


def pooled_copies(copies: dict):
    """Several corpora's augmented copies as one table, ids and sources prefixed as ``pooled``'s."""
    import pandas as pd

    from serflow.features.tables import SOURCE_COLUMN

    return pd.concat(
        [
            c.assign(**{col: name + "/" + c[col].astype(str) for col in ("id", SOURCE_COLUMN)})
            for name, c in copies.items()
        ],
        ignore_index=True,
    )


def train_test(
    train,
    test,
    columns,
    model: dict,
    evaluation: dict,
    n_bootstrap: int,
    seed: int,
    threads: int = 1,
    copies=None,
    return_predictions: bool = False,
):
    """Scores of ``model`` fitted on ``train``'s labelled clips (and ``copies``, the training
    corpus's augmented copies, of those clips) and tested on ``test``'s, on the labels both
    have; with the labels and clips each side dropped. With ``return_predictions``, also
    the test clips' predictions (id, speaker, label, prediction)."""
    import pandas as pd

    from serflow.evaluation.protocols import score
    from serflow.features.tables import SOURCE_COLUMN
    from serflow.models.training import fit_final, predict

    train_labels = set(train["label"].dropna().astype(str))
    test_labels = set(test["label"].dropna().astype(str))
    shared = sorted(train_labels & test_labels)
    if len(shared) < 2:
        raise ValueError(f"fewer than two labels in common ({shared}): nothing to test")
    fit_on = _labelled(train, shared)
    scored = _labelled(test, shared)
    # A corpus's own split does not apply across corpora: every labelled clip trains
    fit_on = fit_on.assign(split="train")
    bundle, _ = fit_final(fit_on, columns, model, evaluation, threads, copies=copies)
    fitted_ids = fit_on["id"].astype(str)
    n_copies = 0 if copies is None else int(copies[SOURCE_COLUMN].astype(str).isin(fitted_ids).sum())
    labels = bundle["labels"]
    # every clip of the test corpus, as serflow predict gets them: its speakers' and domain's
    # statistics must not depend on which labels the training corpus shares
    test = test.reset_index(drop=True)
    out = predict(bundle, test)
    out = out[(test["label"].notna() & test["label"].astype(str).isin(shared)).to_numpy()]
    code = {lab: i for i, lab in enumerate(labels)}
    y = scored["label"].astype(str).map(code).to_numpy()
    pred = out["prediction"].map(code).to_numpy()
    scores = score(y, pred, labels, n_boot=n_bootstrap, seed=seed)
    cell = {
        "uar": scores["uar"],
        "uar_ci95": scores["uar_ci95"],
        "accuracy": scores["accuracy"],
        "accuracy_ci95": scores["accuracy_ci95"],
        "n_train": len(fit_on),
        "n_copies": n_copies,
        "n_test": len(scored),
        "labels": labels,
        "dropped_labels": {
            "train": sorted(train_labels - set(shared)),
            "test": sorted(test_labels - set(shared)),
        },
        "dropped_clips": {
            "train": int(train["label"].notna().sum() - len(fit_on)),
            "test": int(test["label"].notna().sum() - len(scored)),
        },
        "speaker_norm": bundle["normalisation"].describe(),
    }
    if not return_predictions:
        return cell
    predictions = pd.DataFrame(
        {
            "id": scored["id"].astype(str).to_numpy(),
            "speaker": scored["speaker"].to_numpy(),
            "label": scored["label"].astype(str).to_numpy(),
            "prediction": out["prediction"].astype(str).to_numpy(),
        }
    )
    return cell, predictions


#: The ``train`` of a leave-one-corpus-out cell in the predictions table.
POOLED = "(all others)"


def cross_corpus(
    tables: dict,
    own: dict,
    model: dict,
    evaluation: dict,
    n_bootstrap: int = 1000,
    seed: int = 0,
    leave_one_out: bool = True,
    threads: int = 1,
    copies: dict | None = None,
) -> dict:
    """Every ordered pair of ``tables`` (dataset -> feature table), the diagonal from ``own``
    (dataset -> the run's metrics.json), and, with three or more corpora and
    ``leave_one_out``, each corpus tested by a model fitted on all the others pooled.
    ``copies``: dataset -> its augmented copies (``training.load_copies``), for a run with
    augmentation. ``predictions`` (not JSON: saved beside it) holds every cell's test
    predictions, with ``train`` and ``test`` naming the cell (``POOLED`` for the pooled ones)."""
    import pandas as pd

    columns = check_columns(tables)
    copies = copies or {}
    names = list(tables)
    fixed = (columns, model, evaluation, n_bootstrap, seed, threads)
    matrix: dict = {a: {} for a in names}
    predicted = []
    for a in names:
        for b in names:
            if a == b:
                m = own[a]
                matrix[a][b] = {
                    "uar": m["uar"],
                    "uar_ci95": m["uar_ci95"],
                    "accuracy": m["accuracy"],
                    "accuracy_ci95": m["accuracy_ci95"],
                    "n_test": m["n_clips"],
                    "labels": m["labels"],
                    "within": m["protocol"],
                }
                continue
            matrix[a][b], pred = train_test(
                tables[a], tables[b], *fixed, copies.get(a), return_predictions=True
            )
            predicted.append(pred.assign(train=a, test=b))
    loco = {}
    if leave_one_out and len(names) >= 3:
        for b in names:
            others = [a for a in names if a != b]
            rest = pooled({a: tables[a] for a in others})
            rest_copies = pooled_copies({a: copies[a] for a in others}) if copies else None
            loco[b], pred = train_test(rest, tables[b], *fixed, rest_copies, return_predictions=True)
            predicted.append(pred.assign(train=POOLED, test=b))
    return {
        "datasets": names,
        "matrix": matrix,
        "leave_one_out": loco,
        "n_features": len(columns),
        "predictions": pd.concat(predicted, ignore_index=True)[
            ["train", "test", "id", "speaker", "label", "prediction"]
        ],
    }


def compare_cells(results: dict, predictions: dict, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """Per train x test cell that two or more runs share, every run against the cell's best
    (highest UAR) on the same test clips: ``evaluation.comparison.paired_difference``,
    resampling the test corpus's speakers (clips where some have none).

    ``results``: run -> its cross-corpus result (JSON); ``predictions``: run -> its
    predictions table. Cells whose runs kept different labels are compared only among runs
    with the best's labels."""
    from serflow.evaluation.comparison import compare_with_best

    cells: dict = {}
    for run, result in results.items():
        for a, row in result["matrix"].items():
            for b, c in row.items():
                if a != b:
                    cells.setdefault((a, b), {})[run] = c
        for b, c in result.get("leave_one_out", {}).items():
            cells.setdefault((POOLED, b), {})[run] = c
    out = []
    for (a, b), runs in cells.items():
        if len(runs) < 2:
            continue
        best = max(runs, key=lambda r: (runs[r]["uar"], r))
        frames = {
            r: predictions[r][(predictions[r]["train"] == a) & (predictions[r]["test"] == b)] for r in runs
        }
        speakers = frames[best]["speaker"]
        grouped = not speakers.isna().any()  # speakers resampled where all have one
        n_speakers = int(speakers.nunique()) if grouped else 0
        metrics = {
            r: {"labels": runs[r]["labels"], "speaker_independent": grouped, "n_speakers": n_speakers}
            for r in runs
        }
        paired = compare_with_best(frames, metrics, best, n_boot=n_boot, seed=seed)
        ordered = sorted(runs, key=lambda r: (-runs[r]["uar"], r))
        compared = {r: {"uar": runs[r]["uar"], "uar_ci95": runs[r]["uar_ci95"], **paired[r]} for r in ordered}
        out.append({"train": a, "test": b, "best": best, "runs": compared})
    return out


def mean_off_diagonal(result: dict) -> float:
    """Mean UAR of the train != test cells (a summary for logs and the report)."""
    names = result["datasets"]
    cells = [result["matrix"][a][b]["uar"] for a in names for b in names if a != b]
    return float(np.mean(cells)) if cells else float("nan")
