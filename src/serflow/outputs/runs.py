"""A dataset's run outputs under ``results/``: their metrics, the chosen run and how far it holds.

The report, the closing summary, the model cards and the submissions read runs through
here, so the chosen run, its trust and its normalisation are decided and worded once.
"""

from __future__ import annotations

import json
from pathlib import Path

from serflow.models.normalisation import from_metrics

METRICS = ("uar", "accuracy", "macro_f1")
#: How far a run's scores hold for new speakers, by ``trust``: (short, explained).
TRUST = {
    "independent": ("speaker-independent", "speaker-independent (no test speaker in training)"),
    "estimated": (
        "grouped by estimated speakers",
        "grouped by estimated speakers (clusters of voices), so approximately speaker-independent",
    ),
    "dependent": (
        "speaker-dependent",
        "speaker-dependent: speakers are shared between training and test folds (or unknown),"
        " so expect less on new voices",
    ),
}


def dataset_dir(results, dataset: str) -> Path:
    return Path(results) / dataset


def run_dir(results, dataset: str, run: str) -> Path:
    return dataset_dir(results, dataset) / "runs" / run


def read_metrics(paths: dict) -> dict:
    """Run name -> metrics dict, from run name -> metrics.json path (in that order)."""
    out = {}
    for run, path in paths.items():
        with open(path, encoding="utf-8") as f:
            out[run] = json.load(f)
    return out


def trust(metrics: dict) -> str:
    """``independent``, ``estimated`` (folds grouped by estimated speakers) or ``dependent``."""
    if not metrics.get("speaker_independent"):
        return "dependent"
    return "estimated" if metrics.get("speakers") == "estimated" else "independent"


def normalisation(metrics: dict) -> str:
    """How a run normalised its features, from its metrics (short, for tables and logs)."""
    return from_metrics(metrics).describe()


def best_run(metrics: dict, metric: str = "uar") -> str:
    """Name of the run with the highest ``metric`` (ties: the first in ``metrics`` order)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} (use one of {', '.join(METRICS)})")
    if not metrics:
        raise ValueError("no runs to choose from")
    return max(metrics, key=lambda run: (metrics[run][metric], -list(metrics).index(run)))


def choose_best(
    metrics: dict, metric: str = "uar", test_split: dict | None = None, prefer_domain_norm: str = "auto"
) -> tuple[str, str]:
    """The run whose submission is used, and why (a phrase for logs and the report).

    The highest ``metric``, except where the test split keeps to voice groups of its own
    (``test_split``: ``speakers.json``'s entry, ``distinct`` true) and some runs use
    ``domain_norm``: then the highest among those, unless ``prefer_domain_norm`` is
    ``never``. Cross-validation over estimated groups mixes voices between a fold's two
    parts, so it cannot show what test-domain normalisation gains on a test split of
    other voices (docs/performance.md measures both).
    """
    if prefer_domain_norm not in ("auto", "never"):
        raise ValueError(f"prefer_domain_norm must be auto or never, not {prefer_domain_norm!r}")
    best = best_run(metrics, metric)
    reason = f"highest cross-validated {metric}"
    domain = {run: m for run, m in metrics.items() if m.get("model", {}).get("domain_norm")}
    if prefer_domain_norm == "auto" and test_split and test_split.get("distinct") and domain:
        best = best_run(domain, metric)
        reason += (
            f" among the {len(domain)} domain_norm run(s): the test split keeps to voice groups of its"
            f" own (permutation p = {test_split['p_value']:.3f}), which cross-validation cannot show"
        )
    return best, reason


def within_interval(metrics: dict, best: str, metric: str = "uar") -> list[str]:
    """The other runs whose ``metric`` lies within the 95% interval of ``best``'s."""
    m = metrics[best]
    low, high = m.get(f"{metric}_ci95") or [m[metric]] * 2
    return [r for r in metrics if r != best and low <= metrics[r][metric] <= high]


def chosen_run(dataset_root, metrics: dict, metric: str = "uar") -> tuple[str, str]:
    """(the run a dataset's outputs chose, why): ``submissions.json``'s choice when it is
    as new as every metrics file, else the highest ``metric``."""
    root = Path(dataset_root)
    best, reason = best_run(metrics, metric), f"highest cross-validated {metric}"
    submissions = root / "submissions.json"
    newest = max((root / "runs" / r / "metrics.json").stat().st_mtime for r in metrics)
    if submissions.exists() and submissions.stat().st_mtime >= newest:  # not a stale choice
        chosen = json.loads(submissions.read_text(encoding="utf-8"))
        if chosen["best"] in metrics:
            best, reason = chosen["best"], chosen.get("best_reason", reason)
    return best, reason


def best_facts(metrics: dict) -> dict:
    """What ``submissions.json`` says of the chosen run: its protocol, trust and normalisation."""
    return {
        "best_protocol": metrics.get("protocol"),
        "best_speaker_independent": metrics.get("speaker_independent"),
        "best_speakers": metrics.get("speakers", "given" if metrics.get("n_speakers") else "unknown"),
        "best_trust": TRUST[trust(metrics)][0],
        "best_normalisation": normalisation(metrics),
    }
