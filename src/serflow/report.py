"""results/report.html: one self-contained page comparing every run of every dataset.

Data are gathered into plain dicts (``summarise_dataset``, ``run_rows``) and rendered
with a Jinja2 template that escapes every string; no external resources.
"""

from __future__ import annotations

import json
import os

import jinja2
import numpy as np

from serflow.evaluation import SPEAKER_DEPENDENT


def summarise_dataset(manifest, rejected) -> dict:
    """Clips per label and per speaker, durations and rejected files of one dataset."""
    labelled = manifest[manifest["label"].notna()]
    speakers = manifest["speaker"].fillna("(unknown)").astype(str)
    durations = manifest["duration_s"].to_numpy(dtype=float)
    return {
        "n_clips": len(manifest),
        "n_labelled": len(labelled),
        "n_unlabelled": int(manifest["label"].isna().sum()),
        "per_label": labelled["label"].astype(str).value_counts().sort_index().to_dict(),
        "per_speaker": speakers.value_counts().sort_index().to_dict(),
        "duration": {
            "total_s": float(durations.sum()) if len(durations) else 0.0,
            "min_s": float(durations.min()) if len(durations) else 0.0,
            "mean_s": float(durations.mean()) if len(durations) else 0.0,
            "max_s": float(durations.max()) if len(durations) else 0.0,
        },
        "sample_rates": sorted({int(v) for v in manifest["sample_rate"]}),
        "rejected": [
            {"id": str(r.id), "path": str(r.path), "stage": str(r.stage), "reason": str(r.reason)}
            for r in rejected.itertuples()
        ],
    }


def run_rows(metrics: dict, best: str | None = None) -> list[dict]:
    """One table row per run (``metrics``: run name -> metrics dict)."""
    rows = []
    for run, m in metrics.items():
        feature_set, model = run.rsplit("-", 1)
        rows.append(
            {
                "run": run,
                "feature_set": feature_set,
                "model": model,
                "kind": m["model"]["kind"],
                "protocol": m["protocol"],
                "speaker_independent": m["protocol"] not in SPEAKER_DEPENDENT,
                "n_features": m["n_features"],
                "n_folds": m["n_folds"],
                "uar": m["uar"],
                "uar_ci95": m["uar_ci95"],
                "accuracy": m["accuracy"],
                "accuracy_ci95": m["accuracy_ci95"],
                "macro_f1": m["macro_f1"],
                "best": run == best,
            }
        )
    return rows


def confusion_cells(metrics: dict) -> list[list[dict]]:
    """Confusion-matrix rows with counts and row-normalised shares (for shading)."""
    cm = np.asarray(metrics["confusion_matrix"], dtype=float)
    totals = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)
    return [[{"count": int(c), "share": float(s)} for c, s in zip(row, srow)] for row, srow in zip(cm, share)]


def render_report(datasets: list[dict], title: str = "serflow report") -> str:
    """The report's HTML; ``datasets`` as returned by ``dataset_section``."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("serflow", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html.j2").render(title=title, datasets=datasets)


def relative_link(path, report_path) -> str:
    """``path`` relative to the report's folder, with forward slashes (for href)."""
    return os.path.relpath(path, os.path.dirname(os.path.abspath(report_path)) or ".").replace(os.sep, "/")


def read_metrics(paths: dict) -> dict:
    """Run name -> metrics dict, from run name -> metrics.json path."""
    out = {}
    for run, path in paths.items():
        with open(path, encoding="utf-8") as f:
            out[run] = json.load(f)
    return out


def dataset_section(
    name, manifest_path, rejected_path, metrics_paths: dict, metric, report_path, submissions_path=None
):
    """Everything the report shows for one dataset, read from the workflow's outputs."""
    import pandas as pd

    from serflow.submission import best_run

    metrics = read_metrics(metrics_paths)
    best = best_run(metrics, metric) if metrics else None
    submissions = []
    if submissions_path:
        with open(submissions_path, encoding="utf-8") as f:
            summary = json.load(f)
        submissions.append(
            {
                "name": "submission.csv",
                "href": relative_link(summary["best_path"], report_path),
                "best": True,
                "missing": len(summary["runs"][summary["best"]]["missing"]),
            }
        )
        for info in summary["runs"].values():
            submissions.append(
                {
                    "name": os.path.basename(info["path"]),
                    "href": relative_link(info["path"], report_path),
                    "best": False,
                    "missing": len(info["missing"]),
                }
            )
    return {
        "name": name,
        "summary": summarise_dataset(
            pd.read_parquet(manifest_path), pd.read_csv(rejected_path, dtype=str, keep_default_na=False)
        ),
        "metric": metric,
        "runs": run_rows(metrics, best),
        "best": best,
        "labels": metrics[best]["labels"] if best else [],
        "confusion": confusion_cells(metrics[best]) if best else [],
        "submissions": submissions,
    }
