"""Submission files: predictions for a dataset's unlabelled test clips, in the competition's format."""

from __future__ import annotations

import json
from pathlib import Path

from serflow.outputs.runs import best_facts, choose_best, read_metrics


def sample_submission_path(cfg: dict, results: str = "results") -> Path | None:
    """The dataset's sample submission file, if its adapter names or ships one."""
    from serflow.corpus.adapters import ADAPTERS

    return ADAPTERS[cfg["adapter"]].sample_submission(cfg, results)


def label_coding(label_map: dict | None) -> dict:
    """Workflow label -> competition label: the inverse of a renaming ``label_map``.

    A map that merges labels cannot be inverted; labels are then written as mapped.
    """
    if not label_map:
        return {}
    inverse = {}
    for old, new in label_map.items():
        if str(new) in inverse:
            return {}
        inverse[str(new)] = str(old)
    return inverse


def make_submission(
    test_predictions, sample=None, id_column=None, label_column=None, coding=None, fallback=None
):
    """A submission DataFrame and the ids that had no prediction.

    With a ``sample`` submission (DataFrame of strings) its columns and row order are
    kept and the label column is filled; ids without a prediction (rejected clips)
    get ``fallback``. Without one: columns ``id_column``/``label_column`` (default
    id/label), one row per prediction.
    """
    import pandas as pd

    coding = coding or {}
    pred = dict(zip(test_predictions["id"].astype(str), test_predictions["prediction"].astype(str)))
    if sample is None:
        out = pd.DataFrame(
            {
                id_column or "id": list(pred),
                label_column or "label": [coding.get(p, p) for p in pred.values()],
            }
        )
        return out, []
    cols = list(sample.columns)
    if len(cols) < 2:
        raise ValueError(f"sample submission needs an id and a label column, found {cols}")
    id_col = id_column if id_column in cols else cols[0]
    others = [c for c in cols if c != id_col]
    label_col = label_column if label_column in others else others[-1]
    out = sample.copy()
    ids = out[id_col].astype(str).str.strip()
    missing = [i for i in ids if i not in pred]
    out[label_col] = [coding.get(pred[i], pred[i]) if i in pred else fallback for i in ids]
    return out, missing


def write_submissions(
    manifest_path,
    runs: dict,
    outputs: dict,
    best_path,
    summary_path,
    dataset: dict,
    sample_path=None,
    metric: str = "uar",
    test_split: dict | None = None,
    prefer_domain_norm: str = "auto",
    comparison_path=None,
) -> dict:
    """Write one submission per run, copy the best run's to ``best_path``, and a JSON summary.

    ``runs``: run name -> (metrics.json, test_predictions.parquet); ``outputs``: run
    name -> CSV path. The best run is chosen by ``choose_best`` (``test_split``: the
    ``speakers.json`` entry of a ``speakers: cluster`` dataset). Test ids without a
    prediction get the most frequent training label (listed per run in the summary).
    Returns the summary.
    """
    import pandas as pd

    manifest = pd.read_parquet(manifest_path, columns=["label"])
    sample = pd.read_csv(sample_path, dtype=str, keep_default_na=False) if sample_path else None
    coding = label_coding(dataset.get("label_map"))
    labels = manifest["label"].dropna().astype(str)
    fallback = (
        labels.value_counts().sort_index(kind="stable").sort_values(ascending=False, kind="stable").index[0]
    )
    fallback = coding.get(fallback, fallback)
    metrics = read_metrics({run: paths[0] for run, paths in runs.items()})
    summary = {
        "metric": metric,
        "sample_submission": str(sample_path) if sample_path else None,
        "fallback_label": fallback,
        "runs": {},
    }
    for run, (_, test_path) in runs.items():
        sub, missing = make_submission(
            pd.read_parquet(test_path),
            sample,
            dataset.get("id_column"),
            dataset.get("label_column"),
            coding,
            fallback,
        )
        sub.to_csv(outputs[run], index=False)
        summary["runs"][run] = {"path": str(outputs[run]), "rows": len(sub), "missing": missing}
    best, reason = choose_best(metrics, metric, test_split, prefer_domain_norm)
    Path(best_path).write_bytes(Path(outputs[best]).read_bytes())
    m = metrics[best]
    summary.update(
        best=best,
        best_reason=reason,
        best_path=str(best_path),
        best_score=m[metric],
        **best_facts(m),  # how far the score can be trusted
    )
    if comparison_path:  # how close the other runs came (comparison.json, paired tests)
        comparison = json.loads(Path(comparison_path).read_text(encoding="utf-8"))
        if comparison["best"] == best:
            up = comparison["runner_up"]
            summary["not_distinguishable"] = comparison["not_distinguishable"]
            summary["runner_up"] = (
                {
                    "run": up,
                    **{k: comparison["runs"][up][k] for k in ("uar_diff", "uar_diff_ci95", "p_value")},
                }
                if up
                else None
            )
    Path(summary_path).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary
