"""The short summary printed when a run ends: per dataset, what was used and what won."""

from __future__ import annotations

import json
from pathlib import Path

from serflow.outputs.comparisons import describe_runner_up
from serflow.outputs.runs import TRUST, chosen_run, dataset_dir, trust, within_interval


def dataset_summary(name: str, runs: list[str], results="results", metric: str = "uar") -> list[str]:
    """Lines for one dataset from its outputs on disk (nothing for what is not there yet)."""
    root = dataset_dir(results, name)
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
    for run in runs:  # in run order, as ties need
        path = root / "runs" / run / "metrics.json"
        if path.exists():
            metrics[run] = json.loads(path.read_text(encoding="utf-8"))
    if metrics:
        best, reason = chosen_run(root, metrics, metric)
        reason = "" if reason == f"highest cross-validated {metric}" else f" ({reason})"
        m = metrics[best]
        comparison = None
        if (root / "comparison.json").exists():
            comparison = json.loads((root / "comparison.json").read_text(encoding="utf-8"))
            if comparison.get("best") != best or set(comparison["runs"]) != set(metrics):
                comparison = None  # from an earlier choice or other runs
        close = comparison["not_distinguishable"] if comparison else within_interval(metrics, best, metric)
        level = trust(m)
        wording = (
            TRUST[level][0].upper() + " (speakers shared or unknown)"
            if level == "dependent"
            else TRUST[level][0]
        )
        ci = m.get(f"{metric}_ci95")
        interval = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        within = (
            "not distinguishable from it (paired test, p >= 0.05)" if comparison else "within its interval"
        )
        lines.append(
            f"best run {best}: {metric.upper()} {m[metric]:.3f}{interval}, {m['protocol']}, {wording};"
            f" {len(close)} of {len(metrics) - 1} other runs {within}{reason}"
        )
        if comparison and describe_runner_up(comparison):
            lines.append(describe_runner_up(comparison))
    submission = root / "submission.csv"
    if submission.exists():
        lines.append(f"submission: {submission}")
    return lines


def closing_summary(datasets: dict[str, tuple], results="results", report=None) -> str:
    """The summary text: ``datasets`` maps each dataset to (its run names, its selection
    metric[, the listing's warnings, repeated here where they are seen])."""
    out = ["", "serflow summary"]
    for name, (runs, metric, *warnings) in datasets.items():
        lines = dataset_summary(name, runs, results, metric)
        lines += [f"warning: {w}" for w in (warnings[0] if warnings else [])]
        if lines:
            out.append(f"  {name}: " + lines[0])
            out += [f"    {line}" for line in lines[1:]]
    if report and Path(report).exists():
        out.append(f"  report: {report}")
    return "\n".join(out) + "\n"
