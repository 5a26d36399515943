"""Late fusion on EmoDB: handcrafted, d-vector and CNN runs fused three ways, LOSO.

    python bench/bench_fusion.py [--workdir /tmp/serflow-bench-fusion] [--cores 2]

Runs ``config/recipes/emodb_fusion.yaml`` through the workflow on all of EmoDB and prints
each run's pooled LOSO UAR with its 95% interval and its paired difference from the best
single run (as ``comparison.json``: bootstrap interval over speakers, permutation p over
clips), then the fusion jobs' time against a single run's training job.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml
from benchlib import EMODB, REPO, snakemake_command, timed

from serflow.evaluation.comparison import compare_with_best, format_p


def main() -> None:
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/serflow-bench-fusion"))
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    config = yaml.safe_load((REPO / "config/recipes/emodb_fusion.yaml").read_text())
    config["datasets"][0]["root"] = str(EMODB)
    args.workdir.mkdir(parents=True, exist_ok=True)
    (args.workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = snakemake_command(
        args.workdir, "--configfile", str(args.workdir / "config.yaml"), "--cores", str(args.cores)
    )
    took = timed([*cmd, "-q"])
    print(f"emodb_fusion.yaml through the workflow, {args.cores} cores: {took:.0f} s")
    singles = [
        f"{fs}-{m}" for block in config["runs"] for fs in block["feature_sets"] for m in block["models"]
    ]
    runs = singles + [f"fusion-{name}" for name in config["fusions"]]
    folder = args.workdir / "results/emodb/runs"
    metrics = {r: json.loads((folder / r / "metrics.json").read_text()) for r in runs}
    predictions = {r: pd.read_parquet(folder / r / "predictions.parquet") for r in runs}
    best = max(singles, key=lambda r: metrics[r]["uar"])
    paired = compare_with_best(predictions, metrics, best)
    for r in runs:
        m, ci, p = metrics[r], metrics[r]["uar_ci95"], paired[r]
        low, high = p["uar_diff_ci95"]
        weights = m["folds"][0]["params"].get("weights") if r.startswith("fusion-") else None
        print(
            f"  {r:28s} UAR {m['uar']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]  vs {best}: {p['uar_diff']:+.3f}"
            f" [{low:+.3f}, {high:+.3f}], paired p {format_p(p['p_value'])}"
            + (f"  (fold 0 weights {', '.join(f'{w:.2f}' for w in weights)})" if weights else "")
        )
    bench = args.workdir / "benchmarks/emodb/train"
    train_s = float(pd.read_csv(bench / f"{best}.tsv", sep="\t")["s"].iloc[0])
    print(f"  training job of {best}: {train_s:.1f} s (a fusion job reads the runs' predictions only)")


if __name__ == "__main__":
    main()
