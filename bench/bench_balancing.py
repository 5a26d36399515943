"""Class balancing on EmoDB: class weights, none, and imbalanced-learn resamplers, LOSO.

    python bench/bench_balancing.py [--workdir /tmp/serflow-bench-balancing] [--cores 2] [--keep 4]

Runs ``config/recipes/emodb_balancing.yaml`` through the workflow on all of EmoDB and on an
imbalanced copy of it (a CSV listing of the same files in which only one in ``--keep``
clips, in name order, of happiness, fear and sadness is left), and prints each run's pooled
LOSO UAR with its 95% interval, the paired difference from the class-weighted run of the same
normalisation (bootstrap interval over speakers and permutation p-value, as
``comparison.json``), and the wall time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml
from benchlib import EMODB, REPO, snakemake_command, timed

from serflow.corpus.adapters import EMODB_EMOTIONS
from serflow.evaluation.comparison import compare_with_best, format_p

THINNED = ("F", "A", "T")  # happiness, fear, sadness


def imbalanced_listing(dest: Path, keep: int) -> Path:
    import pandas as pd

    rows, seen = [], {}
    for wav in sorted(EMODB.glob("*.wav")):
        code = wav.name[5]
        seen[code] = seen.get(code, -1) + 1
        if code in THINNED and seen[code] % keep:
            continue
        rows.append({"path": str(wav), "label": EMODB_EMOTIONS[code], "speaker": wav.name[:2]})
    dest.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(dest, index=False)
    return dest


def emodb_datasets(workdir: Path, keep: int, imbalanced_runs=None) -> list[dict]:
    """All of EmoDB, and its imbalanced copy (``imbalanced_listing``; with its own ``runs``)."""
    listing = imbalanced_listing(workdir / "emodb_imbalanced.csv", keep)
    imbalanced = {
        "name": "emodb_imbalanced",
        "adapter": "csv",
        "table": str(listing),
        "label_column": "label",
        "speaker_column": "speaker",
    }
    if imbalanced_runs:
        imbalanced["runs"] = imbalanced_runs
    return [{"name": "emodb", "adapter": "emodb", "root": str(EMODB)}, imbalanced]


def main() -> None:
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/serflow-bench-balancing"))
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--keep", type=int, default=4, help="one in this many clips of the thinned classes")
    args = ap.parse_args()
    config = yaml.safe_load((REPO / "config/recipes/emodb_balancing.yaml").read_text())
    config["datasets"] = emodb_datasets(args.workdir, args.keep)
    (args.workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = snakemake_command(
        args.workdir, "--configfile", str(args.workdir / "config.yaml"), "--cores", str(args.cores)
    )
    took = timed([*cmd, "-q"])
    print(f"emodb_balancing.yaml on two datasets through the workflow, {args.cores} cores: {took:.0f} s")
    models = config["runs"][0]["models"]
    for ds in ("emodb", "emodb_imbalanced"):
        metrics = {
            m: json.loads((args.workdir / f"results/{ds}/runs/all-{m}/metrics.json").read_text())
            for m in models
        }
        counts = metrics["logreg"]["per_class"]
        print(
            f"\n{ds}: {metrics['logreg']['n_clips']} clips, "
            + ", ".join(f"{k} {v['support']}" for k, v in counts.items())
        )
        predictions = {
            m: pd.read_parquet(args.workdir / f"results/{ds}/runs/all-{m}/predictions.parquet")
            for m in models
        }
        for m in models:
            base = "logreg_spk" if m.startswith("logreg_spk") else "logreg"
            r, ci = metrics[m], metrics[m]["uar_ci95"]
            paired = compare_with_best({m: predictions[m], base: predictions[base]}, metrics, base)[m]
            low, high = paired["uar_diff_ci95"]
            print(
                f"  all-{m:18s} UAR {r['uar']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]  accuracy {r['accuracy']:.3f}"
                f"  vs {base}: {paired['uar_diff']:+.3f} [{low:+.3f}, {high:+.3f}],"
                f" paired p {format_p(paired['p_value'])}"
            )


if __name__ == "__main__":
    main()
