"""The short summary printed when a run ends: per dataset, what was used and what won."""

from __future__ import annotations

import json
from pathlib import Path

from serflow.submission import best_run


def dataset_summary(name: str, runs: list[str], results="results", metric: str = "uar") -> list[str]:
    """Lines for one dataset from its outputs on disk (nothing for what is not there yet)."""
    root = Path(results) / name
    lines = []
    manifest = root / "manifest.parquet"
    if manifest.exists():
        import pandas as pd

        clips = pd.read_parquet(manifest, columns=["label"])
        rejected = root / "rejected.csv"
        n_rejected = len(pd.read_csv(rejected)) if rejected.exists() else 0
        labelled = int(clips["label"].notna().sum())
        lines.append(
            f"{len(clips)} clips ({labelled} labelled, {len(clips) - labelled} test), {n_rejected} rejected"
            + (f" (see {rejected})" if n_rejected else "")
        )
    metrics = {}
    for run in runs:
        path = root / "runs" / run / "metrics.json"
        if path.exists():
            metrics[run] = json.loads(path.read_text(encoding="utf-8"))
    if metrics:
        best = best_run(metrics, metric)  # metrics is in run order, as ties need
        submissions, reason = root / "submissions.json", ""
        newest = max((root / "runs" / r / "metrics.json").stat().st_mtime for r in metrics)
        if submissions.exists() and submissions.stat().st_mtime >= newest:  # not a stale choice
            chosen = json.loads(submissions.read_text(encoding="utf-8"))  # choose_best's
            if chosen["best"] in metrics and chosen["best"] != best:
                best, reason = chosen["best"], f" ({chosen.get('best_reason', 'submissions.json')})"
        m = metrics[best]
        low, high = m.get(f"{metric}_ci95") or [m[metric]] * 2
        close = [r for r in metrics if r != best and low <= metrics[r][metric] <= high]
        speakers = m.get("speakers", "given")
        trust = "speaker-independent"
        if not m["speaker_independent"]:
            trust = "SPEAKER-DEPENDENT (speakers shared or unknown)"
        if m["speaker_independent"] and speakers == "estimated":
            trust = "grouped by estimated speakers"
        ci = m.get(f"{metric}_ci95")
        interval = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        lines.append(
            f"best run {best}: {metric.upper()} {m[metric]:.3f}{interval}, {m['protocol']}, {trust};"
            f" {len(close)} of {len(metrics) - 1} other runs within its interval{reason}"
        )
    submission = root / "submission.csv"
    if submission.exists():
        lines.append(f"submission: {submission}")
    return lines


def closing_summary(datasets: dict[str, tuple[list[str], str]], results="results", report=None) -> str:
    """The summary text: ``datasets`` maps each dataset to (its run names, its selection metric)."""
    out = ["", "serflow summary"]
    for name, (runs, metric) in datasets.items():
        lines = dataset_summary(name, runs, results, metric)
        if lines:
            out.append(f"  {name}: " + lines[0])
            out += [f"    {line}" for line in lines[1:]]
    if report and Path(report).exists():
        out.append(f"  report: {report}")
    return "\n".join(out) + "\n"
