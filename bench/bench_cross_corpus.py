"""Cross-corpus on EmoDB's two speaker halves: trained on one, tested on the other, LOSO diagonal.

    python bench/bench_cross_corpus.py [--workdir /tmp/serflow-bench-cross-corpus] [--cores 2]

Runs ``config/recipes/emodb_cross_corpus.yaml`` (EmoDB's speakers 03 08 09 10 11 and 12 13
14 15 16 as two datasets) through the workflow and prints each run's
train x test UAR matrix with 95% intervals (the diagonal: each half's own LOSO), the
cross-corpus job's time, and each run against each cell's best (paired).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml
from benchlib import EMODB, REPO, snakemake_command, timed

from serflow.evaluation.comparison import format_p


def main() -> None:
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/serflow-bench-cross-corpus"))
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO / "config/recipes/emodb_cross_corpus.yaml").read_text())
    for ds in config["datasets"]:
        ds["root"] = str(EMODB)
    (args.workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = snakemake_command(
        args.workdir, "--configfile", str(args.workdir / "config.yaml"), "--cores", str(args.cores)
    )
    took = timed([*cmd, "-q"])
    print(f"emodb_cross_corpus.yaml through the workflow, {args.cores} cores: {took:.0f} s")
    for path in sorted((args.workdir / "results/cross_corpus").glob("*-*.json")):
        result = json.loads(path.read_text())
        names = result["datasets"]
        print(f"\n{result['run']}: train (rows) x test (columns), UAR [95%]")
        for a in names:
            cells = []
            for b in names:
                c = result["matrix"][a][b]
                cells.append(f"{c['uar']:.3f} [{c['uar_ci95'][0]:.3f}, {c['uar_ci95'][1]:.3f}]")
            print(f"  {a:8s} " + "   ".join(cells))
        seconds = float(
            pd.read_csv(args.workdir / f"benchmarks/cross_corpus/{result['run']}.tsv", sep="\t")["s"].iloc[0]
        )
        print(f"  cross-corpus job: {seconds:.1f} s")
    comparison = args.workdir / "results/cross_corpus/comparison.json"
    if comparison.exists():
        print("\nruns against each cell's best, same test clips (paired; bootstrap over test speakers)")
        for cell in json.loads(comparison.read_text())["cells"]:
            print(f"  {cell['train']} -> {cell['test']}: best {cell['best']}")
            for run, c in cell["runs"].items():
                if run != cell["best"] and c["comparable"]:
                    low, high = c["uar_diff_ci95"]
                    print(
                        f"    {run:24s} {c['uar']:.3f}  {c['uar_diff']:+.3f} [{low:+.3f}, {high:+.3f}],"
                        f" p {format_p(c['p_value'])}"
                    )


if __name__ == "__main__":
    main()
