"""Waveform augmentation on EmoDB: each transform's copies in the training folds, LOSO.

    python bench/bench_augmentation.py [--workdir /tmp/serflow-bench-augmentation] [--cores 2] [--keep 4]

Runs ``config/recipes/emodb_augmentation.yaml`` through the workflow on all of EmoDB and on
an imbalanced copy of it (as ``bench_balancing.py``: one in ``--keep`` clips of happiness,
fear and sadness left), where copies of the thinned classes also replace class weights
(``balance``). Prints each run's pooled LOSO UAR with its 95% interval and the paired
difference from the unaugmented run of the same normalisation (as ``comparison.json``), then
the cost of each augmentation: transform seconds per copy (in this process, one thread),
extraction job seconds per copy (the workflow's benchmark files) and cache bytes per copy.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml
from bench_balancing import emodb_datasets
from benchlib import EMODB, REPO, snakemake_command, timed

from serflow.evaluation.comparison import compare_with_best, format_p

IMBALANCED_RUNS = [
    *("logreg", "logreg_balance", "logreg_mixed"),
    *("logreg_spk", "logreg_spk_balance", "logreg_spk_mixed"),
]


def transform_seconds(config: dict, n_clips: int = 30) -> dict[str, float]:
    """Seconds per copy of each augmentation's transforms on the first EmoDB clips."""
    from serflow.augmentation import Augmentation
    from serflow.corpus.audio import load_audio

    clips = [load_audio(p, 16000) for p in sorted(EMODB.glob("*.wav"))[:n_clips]]
    out = {}
    for name, cfg in config["augmentations"].items():
        aug = Augmentation.from_config(name, cfg)
        aug.apply(clips[0], 16000, aug.copy_checksum("warm", 0))  # numba compiles once
        start = time.perf_counter()
        for k, y in enumerate(clips):
            aug.apply(y, 16000, aug.copy_checksum(str(k), 0))
        out[name] = (time.perf_counter() - start) / len(clips)
    return out


def cache_bytes(workdir: Path, dataset: str, name: str) -> tuple[int, float, float]:
    """(copies, extraction job seconds per copy, cache bytes per copy) of one augmentation."""
    import pandas as pd

    copies = pd.read_parquet(workdir / f"results/{dataset}/augmented/{name}/copies.parquet")
    wanted = set(copies["checksum"])
    size = sum(p.stat().st_size for p in (workdir / "results/cache").rglob("*.npy") if p.stem in wanted)
    seconds = sum(
        float(pd.read_csv(f, sep="\t")["s"].iloc[0])
        for f in (workdir / f"benchmarks/{dataset}/augment/{name}/extract").rglob("*.tsv")
    )
    n = max(1, len(copies))
    return len(copies), seconds / n, size / n


def main() -> None:
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/serflow-bench-augmentation"))
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--keep", type=int, default=4, help="one in this many clips of the thinned classes")
    args = ap.parse_args()
    config = yaml.safe_load((REPO / "config/recipes/emodb_augmentation.yaml").read_text())
    full_runs = config["runs"][0]["models"]
    config["datasets"] = emodb_datasets(
        args.workdir, args.keep, [{"feature_sets": ["all"], "models": IMBALANCED_RUNS}]
    )
    (args.workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = snakemake_command(
        args.workdir, "--configfile", str(args.workdir / "config.yaml"), "--cores", str(args.cores)
    )
    took = timed([*cmd, "-q"])
    print(f"emodb_augmentation.yaml on two datasets through the workflow, {args.cores} cores: {took:.0f} s")
    for ds, models in (("emodb", full_runs), ("emodb_imbalanced", IMBALANCED_RUNS)):
        run = lambda m, ds=ds: args.workdir / f"results/{ds}/runs/all-{m}"  # noqa: E731
        metrics = {m: json.loads((run(m) / "metrics.json").read_text()) for m in models}
        counts = metrics["logreg"]["per_class"]
        print(
            f"\n{ds}: {metrics['logreg']['n_clips']} clips, "
            + ", ".join(f"{k} {v['support']}" for k, v in counts.items())
        )
        predictions = {m: pd.read_parquet(run(m) / "predictions.parquet") for m in models}
        for m in models:
            base = "logreg_spk" if m.startswith("logreg_spk") else "logreg"
            r, ci = metrics[m], metrics[m]["uar_ci95"]
            paired = compare_with_best({m: predictions[m], base: predictions[base]}, metrics, base)[m]
            low, high = paired["uar_diff_ci95"]
            copies = metrics[m]["folds"][0].get("train_per_label", {}).get("copies")
            print(
                f"  all-{m:20s} UAR {r['uar']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]  accuracy {r['accuracy']:.3f}"
                f"  vs {base}: {paired['uar_diff']:+.3f} [{low:+.3f}, {high:+.3f}],"
                f" paired p {format_p(paired['p_value'])}"
                + (f"  (fold 0: {sum(copies.values())} copies)" if copies else "")
            )
    print("\ncost per copy: transforms (16 kHz, one thread) | extraction jobs | cache")
    clip_s = sum(
        float(pd.read_csv(f, sep="\t")["s"].iloc[0])
        for f in (args.workdir / "benchmarks/emodb/extract").rglob("*.tsv")
    )
    print(f"  (the 535 clips themselves: {clip_s / 535 * 1000:.1f} ms per clip in their extraction jobs)")
    seconds = transform_seconds(config)
    for name in config["augmentations"]:
        ds = "emodb_imbalanced" if name == "balance" else "emodb"
        n, job_s, size = cache_bytes(args.workdir, ds, name)
        print(
            f"  {name:8s} {n:4d} copies: {seconds[name] * 1000:6.1f} ms | {job_s * 1000:6.1f} ms"
            f" | {size / 1024:5.1f} KiB"
        )


if __name__ == "__main__":
    main()
