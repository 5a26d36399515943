"""Training at scale: a RAVDESS-shaped corpus through a recipe, before and after, end to end.

The demo generator writes a corpus of the shape of the held-out corpus issue 14 measured
(default: 1 440 clips of 3-4 s at 48 kHz, 24 speakers, 8 emotions); a new user runs it
through the competition adapter with a recipe's features and models (default
``config/recipes/emodb_best.yaml``). Each Snakefile given (this checkout, an older one)
runs it from scratch with ``--cores N``, its own folder and cache. Prints the wall time
end to end, the training jobs' time and every run's LOSO UAR, and the speed-up against
the first Snakefile.

    python bench/bench_training.py --snakefile OLD/Snakefile Snakefile [--cores 2] [--n-clips 1440]
        [--baseline-recipe OLD/config/recipes/emodb_best.yaml]

``--baseline-recipe`` gives the first Snakefile the recipe as it was at that commit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from benchlib import REPO, SNAKEMAKE


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--snakefile", type=Path, nargs="+", default=[REPO / "Snakefile"])
    ap.add_argument("--recipe", type=Path, default=REPO / "config/recipes/emodb_best.yaml")
    ap.add_argument("--baseline-recipe", type=Path, default=None, help="the first Snakefile's recipe")
    ap.add_argument("--n-clips", type=int, default=1440)
    ap.add_argument("--speakers", type=int, default=24)
    ap.add_argument("--emotions", type=int, default=8)
    ap.add_argument("--sample-rate", type=int, default=48000)
    ap.add_argument("--duration", type=float, nargs=2, default=(3.0, 4.0))
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    from serflow.corpus.demo import generate_demo_corpus

    root = args.workdir or Path(tempfile.mkdtemp(prefix="serflow-training-"))
    corpus = root / "corpus"
    if not (corpus / "train.csv").exists():
        start = time.perf_counter()
        generate_demo_corpus(
            corpus,
            n_train=args.n_clips,
            n_test=0,
            n_speakers=args.speakers,
            n_emotions=args.emotions,
            sample_rate=args.sample_rate,
            duration_range=tuple(args.duration),
        )
        print(f"corpus: {args.n_clips} clips written in {time.perf_counter() - start:.0f} s to {corpus}")
        for name in ("test.csv", "sample_submission.csv"):  # no test split: as a user's folder
            (corpus / name).unlink()
    rows = []
    for i, snakefile in enumerate(args.snakefile):
        recipe_path = args.baseline_recipe if i == 0 and args.baseline_recipe else args.recipe
        recipe = yaml.safe_load(recipe_path.read_text())
        config = {k: v for k, v in recipe.items() if k != "datasets"}
        config["datasets"] = [{"name": "scale", "adapter": "competition", "root": str(corpus)}]
        config["extraction"] = {"shards": args.cores}
        work = root / f"work{i}"
        work.mkdir(exist_ok=True)
        (work / "config.yaml").write_text(yaml.safe_dump(config))
        cmd = [SNAKEMAKE, "-s", str(snakefile.resolve()), "-d", str(work), "--configfile", "config.yaml"]
        cmd += ["--cores", str(args.cores), "--quiet", "all"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode:
            sys.exit(f"{snakefile} failed:\n{proc.stderr[-4000:]}")
        train = [
            float(p.read_text().splitlines()[1].split()[0]) for p in work.glob("benchmarks/scale/train/*.tsv")
        ]
        uar = {
            p.parent.name: json.loads(p.read_text())["uar"]
            for p in sorted(work.glob("results/scale/runs/*/metrics.json"))
        }
        rows.append((snakefile, wall, sum(train), uar))
    base = rows[0][1]
    for snakefile, wall, train, uar in rows:
        scores = ", ".join(f"{run} {u:.3f}" for run, u in uar.items())
        print(f"{snakefile}\n  end to end {wall:7.1f} s (x{base / wall:.2f}), train jobs {train:7.1f} s")
        print(f"  LOSO UAR: {scores}")
    print(f"(workdirs under {root})")


if __name__ == "__main__":
    main()
