"""results/report.html: one self-contained page comparing every run of every dataset.

Each section is gathered into plain dicts by a function here and rendered by the
Jinja2 template ``templates/report.html.j2``, which escapes every string. Figures are
embedded PNG data URIs (``serflow.outputs.plots``); nothing is fetched at view time.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import jinja2
import numpy as np

from serflow.evaluation.comparison import format_p
from serflow.outputs.runs import TRUST, best_run, normalisation, read_metrics, trust, within_interval


def summarise_dataset(manifest, rejected, label_map=None, plots: bool = True) -> dict:
    """Clips per label and per speaker, durations, formats, label merges and rejected files."""
    from serflow.outputs import plots as figs

    labelled = manifest[manifest["label"].notna()]
    speakers = manifest["speaker"].fillna("(unknown)").astype(str)
    durations = manifest["duration_s"].to_numpy(dtype=float)
    per_label = labelled["label"].astype(str).value_counts().sort_index().to_dict()
    per_speaker = speakers.value_counts().sort_index().to_dict()
    summary = {
        "n_clips": len(manifest),
        "n_labelled": len(labelled),
        "n_unlabelled": int(manifest["label"].isna().sum()),
        "per_label": per_label,
        "per_speaker": per_speaker,
        "duration": {
            "total_s": float(durations.sum()) if len(durations) else 0.0,
            "min_s": float(durations.min()) if len(durations) else 0.0,
            "mean_s": float(durations.mean()) if len(durations) else 0.0,
            "max_s": float(durations.max()) if len(durations) else 0.0,
        },
        "sample_rates": _counts(manifest, "sample_rate"),
        "channels": _counts(manifest, "channels"),
        "label_map": {str(k): str(v) for k, v in (label_map or {}).items()},
        "rejected": [
            {"id": str(r.id), "path": str(r.path), "stage": str(r.stage), "reason": str(r.reason)}
            for r in rejected.itertuples()
        ],
        "plots": {},
    }
    if plots and len(manifest):
        summary["plots"] = {
            "per_label": figs.bar_chart(per_label, "Labelled clips per label", "label")
            if per_label
            else None,
            "per_speaker": figs.bar_chart(per_speaker, "Clips per speaker", "speaker"),
            "durations": figs.histogram(durations, "Clip durations", "seconds"),
        }
    return summary


def _counts(frame, column) -> dict:
    if column not in frame:
        return {}
    return {str(k): int(v) for k, v in frame[column].value_counts().sort_index().items()}


def run_rows(
    metrics: dict,
    best: str | None = None,
    fit_seconds: dict | None = None,
    metric: str = "uar",
    comparison: dict | None = None,
) -> list[dict]:
    """One comparison-table row per run (``metrics``: run name -> metrics dict): the best
    first, then by ``metric``; ``close`` marks the runs not distinguishable from the best
    (``comparison``: ``comparison.json``, paired tests), or without one those within the
    best run's interval; ``paired``: the run's paired difference from the best."""
    paired = (comparison or {}).get("runs", {}) if (comparison or {}).get("best") == best else {}
    if paired:
        close = set(comparison["not_distinguishable"])
    else:
        close = set(within_interval(metrics, best, metric)) if best else set()
    order = sorted(metrics, key=lambda r: (r != best, -metrics[r][metric], list(metrics).index(r)))
    rows = []
    for run in order:
        m = metrics[run]
        feature_set, model = run.rsplit("-", 1)
        rows.append(
            {
                "run": run,
                "feature_set": feature_set,
                "model": model,
                "kind": m["model"]["kind"],
                "protocol": m["protocol"],
                "speaker_independent": m["speaker_independent"],
                "n_features": m["n_features"],
                "n_folds": m["n_folds"],
                "speaker_norm": normalisation(m),
                "resample": (m["model"].get("resample") or {}).get("method"),
                "augment": (m["model"].get("augment") or {}).get("name"),
                "speakers": m.get("speakers", "given"),
                "n_labels": len(m["labels"]),
                "trust": trust(m),
                "trust_text": TRUST[trust(m)][0],
                "uar": m["uar"],
                "uar_ci95": m["uar_ci95"],
                "accuracy": m["accuracy"],
                "accuracy_ci95": m["accuracy_ci95"],
                "macro_f1": m["macro_f1"],
                "fit_s": (fit_seconds or {}).get(run),
                "best": run == best,
                "close": run in close,
                "paired": paired.get(run) if paired.get(run, {}).get("comparable") else None,
                "p_text": format_p(paired[run]["p_value"]) if paired.get(run, {}).get("comparable") else "",
            }
        )
    return rows


def confusion_cells(metrics: dict) -> list[list[dict]]:
    """Confusion-matrix rows with counts and row-normalised shares."""
    cm = np.asarray(metrics["confusion_matrix"], dtype=float)
    totals = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)
    return [[{"count": int(c), "share": float(s)} for c, s in zip(row, srow)] for row, srow in zip(cm, share)]


def run_details(run: str, metrics: dict, importance=None, top: int = 15) -> dict:
    """What the collapsible section of one run shows."""
    imp = []
    if importance is not None and len(importance):
        head = importance.head(top)
        imp = [{"feature": str(f), "value": float(v)} for f, v in zip(head["feature"], head["importance"])]
    return {
        "run": run,
        "uar": metrics["uar"],
        "protocol": metrics["protocol"],
        "speaker_independent": metrics["speaker_independent"],
        "labels": metrics["labels"],
        "confusion": confusion_cells(metrics),
        "per_class": metrics["per_class"],
        "per_speaker": metrics.get("per_speaker") or {},
        "folds": metrics["folds"],
        "model": metrics["model"],
        "importance": imp,
        "importance_type": str(importance["type"].iloc[0]) if imp else None,
    }


def examples(manifest, sample_rate: int, max_seconds: float = 10.0) -> list[dict]:
    """For each label, its first clip (by id): waveform and log-mel plot, and the audio."""
    import pandas as pd

    from serflow.corpus.audio import AudioError, load_audio
    from serflow.outputs import plots as figs

    out = []
    labelled = manifest[manifest["label"].notna()].sort_values("id", kind="stable")
    for label, group in labelled.groupby(labelled["label"].astype(str), sort=True):
        row = group.iloc[0]
        try:
            y = load_audio(row["path"], sample_rate)
        except AudioError:
            continue
        y = y[: int(max_seconds * sample_rate)]
        out.append(
            {
                "label": label,
                "id": str(row["id"]),
                "speaker": None if pd.isna(row["speaker"]) else str(row["speaker"]),
                "figure": figs.clip_figure(y, sample_rate, f"{label}: {row['id']}"),
                "audio": figs.audio_data_uri(y, sample_rate, max_seconds),
            }
        )
    return out


def data_checksum(manifest) -> str:
    """BLAKE2b of the sorted (id, file checksum, label) triples: the data a run saw."""
    h = hashlib.blake2b(digest_size=16)
    columns = [manifest[c].fillna("").astype(str) for c in ("id", "checksum", "label")]
    rows = sorted(zip(*columns))
    for row in rows:
        h.update("\t".join(row).encode() + b"\n")
    return h.hexdigest()


def cache_stats(shard_paths) -> dict:
    """Cache hits, computed and failed files and extraction seconds summed over shard outputs."""
    from serflow.features.tables import read_metadata

    total = {"cached": 0, "computed": 0, "failed": 0, "seconds": 0.0}
    for path in shard_paths:
        stats = read_metadata(path).get("stats", {})
        for key in total:
            total[key] += stats.get(key, 0)
    total["seconds"] = round(total["seconds"], 2)
    return total


def rule_times(benchmark_dir) -> list[dict]:
    """Per rule: jobs, total and longest wall seconds, peak memory, from Snakemake benchmark files."""
    root = Path(benchmark_dir)
    rules: dict[str, list] = {}
    for path in sorted(root.rglob("*.tsv")) if root.is_dir() else []:
        parts = path.relative_to(root).parts
        rule = parts[0] if len(parts) > 1 else path.stem
        with open(path, newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                rules.setdefault(rule, []).append((float(row["s"]), _float(row.get("max_rss"))))
    return [
        {
            "rule": rule,
            "jobs": len(v),
            "total_s": sum(s for s, _ in v),
            "max_s": max(s for s, _ in v),
            "max_rss_mb": max((m for _, m in v if m is not None), default=None),
        }
        for rule, v in rules.items()
    ]


def _float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def fit_seconds(benchmark_dir, runs) -> dict:
    """Wall seconds of each run's train job (its benchmark file), where present."""
    out = {}
    for run in runs:
        path = Path(benchmark_dir) / "train" / f"{run}.tsv"
        if path.exists():
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f, delimiter="\t"))
            if rows:
                out[run] = float(rows[-1]["s"])
    return out


def relative_link(path, report_path) -> str:
    """``path`` relative to the report's folder, with forward slashes (for href)."""
    return os.path.relpath(path, os.path.dirname(os.path.abspath(report_path)) or ".").replace(os.sep, "/")


def dataset_section(
    name: str,
    paths: dict,
    runs: list[str],
    report_path,
    metric: str = "uar",
    label_map=None,
    sample_rate: int = 16000,
    with_examples: bool = True,
    warnings: list[str] = (),
) -> dict:
    """Everything the report shows for one dataset, read from the workflow's outputs.

    ``paths``: manifest, rejected, metrics (list, one per run), importance (list),
    shards (list), tables (feature set -> path), models (list), benchmarks (folder),
    and optionally submissions (the submissions.json) and speakers (``speakers.json`` of
    a ``speakers: cluster`` dataset). ``warnings``: what the listing checks found.
    """
    import pandas as pd

    metrics = read_metrics(dict(zip(runs, paths["metrics"])))
    best = best_run(metrics, metric) if metrics else None
    best_reason = f"highest cross-validated {metric}"
    summary = None
    if paths.get("submissions"):
        with open(paths["submissions"], encoding="utf-8") as f:
            summary = json.load(f)
        if summary["best"] in metrics:  # the run whose submission is used
            best, best_reason = summary["best"], summary.get("best_reason", best_reason)
    manifest = pd.read_parquet(paths["manifest"])
    rejected = pd.read_csv(paths["rejected"], dtype=str, keep_default_na=False)
    details = []
    for run, imp_path in zip(runs, paths.get("importance", [None] * len(runs))):
        importance = pd.read_csv(imp_path) if imp_path else None
        details.append(run_details(run, metrics[run], importance))
    submissions = []
    if summary:
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
    comparison = None
    if paths.get("comparison") and os.path.exists(paths["comparison"]):
        with open(paths["comparison"], encoding="utf-8") as f:
            comparison = json.load(f)
    bench = paths.get("benchmarks")
    speakers = None
    if paths.get("speakers"):
        with open(paths["speakers"], encoding="utf-8") as f:
            speakers = json.load(f)
    return {
        "name": name,
        "summary": summarise_dataset(manifest, rejected, label_map),
        "estimated_speakers": speakers,
        "warnings": list(warnings),
        "metric": metric,
        "runs": run_rows(metrics, best, fit_seconds(bench, runs) if bench else {}, metric, comparison),
        "paired": bool(comparison and comparison.get("best") == best),
        "comparison_href": relative_link(paths["comparison"], report_path) if comparison else None,
        "best": best,
        "best_reason": best_reason,
        "best_details": next((d for d in details if d["run"] == best), None),
        "details": details,
        "submissions": submissions,
        "examples": examples(manifest, sample_rate) if with_examples else [],
        "provenance": {
            "data_checksum": data_checksum(manifest),
            "cache": cache_stats(paths.get("shards", [])),
            "rule_times": rule_times(bench) if bench else [],
            "tables": [
                {"name": os.path.basename(p), "href": relative_link(p, report_path)}
                for p in paths.get("tables", [])
            ],
            "models": [
                {"name": run, "href": relative_link(p, report_path)}
                for run, p in zip(runs, paths.get("models", []))
            ],
        },
    }


def extractor_table(common: dict, per_dataset: dict) -> dict:
    """Extractor parameters for the provenance table: one line per extractor of ``common``
    (name -> parameters), plus one per dataset and extractor whose parameters differ."""

    def line(params):
        return ", ".join(f"{k}={v}" for k, v in params.items())

    out = {name: line(params) for name, params in common.items()}
    for ds, extractors in per_dataset.items():
        for name, params in extractors.items():
            changed = {k: v for k, v in params.items() if (common.get(name) or {}).get(k) != v}
            if changed:
                out[f"dataset {ds}: {name}"] = line(changed)
    return out


def config_text(config: dict) -> str:
    """The config as YAML, every repeated value written out (no ``&id001`` anchors)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data):
            return True

    return yaml.dump(dict(config), Dumper=Dumper, sort_keys=False, allow_unicode=True)


def render_report(
    datasets: list[dict],
    provenance: dict | None = None,
    title: str = "serflow report",
    cross_corpus=(),
    cross_corpus_cells=(),
) -> str:
    """The report's HTML; ``datasets`` as returned by ``dataset_section``.

    ``provenance``: config (YAML text), versions (package -> version), extractor
    parameters. ``cross_corpus``: the results of cross-corpus runs (``results/cross_corpus/*.json``);
    ``cross_corpus_cells``: their paired comparison per cell (``cross_corpus.compare_cells``).
    """
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("serflow", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    prov = {"config": "", "versions": {}, "extractor": {}, **(provenance or {})}
    return env.get_template("report.html.j2").render(
        title=title,
        datasets=datasets,
        overview=overview(datasets),
        ranking=across_datasets(datasets),
        cross_corpus=list(cross_corpus),
        cross_corpus_cells=[
            {
                **cell,
                "runs": {
                    run: {
                        **c,
                        "p_text": format_p(c["p_value"]) if c["comparable"] and run != cell["best"] else "",
                    }
                    for run, c in cell["runs"].items()
                },
            }
            for cell in cross_corpus_cells
        ],
        provenance=prov,
    )


def across_datasets(datasets: list[dict]) -> dict | None:
    """The runs every dataset shares, ranked over the datasets (``rank_runs``) by their
    common metric (UAR where the datasets' metrics differ), with the critical-difference
    diagram; None with fewer than two datasets or three shared runs."""
    from serflow.evaluation.ranking import rank_runs
    from serflow.outputs.plots import critical_difference

    metrics = {ds["metric"] for ds in datasets}
    metric = metrics.pop() if len(metrics) == 1 else "uar"
    scores = {ds["name"]: {r["run"]: r[metric] for r in ds["runs"]} for ds in datasets if ds["runs"]}
    ranking = rank_runs(scores) if len(scores) > 1 else None
    if ranking is None:
        return None
    return {**ranking, "metric": metric, "plot": critical_difference(ranking)}


def overview(datasets: list[dict]) -> list[dict]:
    """Each dataset's best run, with its UAR's distance to the highest of them.

    With several recipes as datasets of one config (``config/recipes/compare_emodb.yaml``)
    this puts each recipe beside the best configuration.
    """
    rows = [
        {"dataset": ds["name"], **next(r for r in ds["runs"] if r["best"])}
        for ds in datasets
        if ds["best"] is not None
    ]
    top = max((r["uar"] for r in rows), default=0.0)
    return [{**r, "uar_gap": r["uar"] - top} for r in rows]
