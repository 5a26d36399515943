"""Training cost against clips, speakers and grid size: measured per fold, projected per run.

A run is (outer folds + 1) fits of one training set, each a search (grid points x inner
folds) and a refit, spread over processes. This measures, in one process and one thread,
the wall time of one such fit of a logistic regression on synthetic features (3 213
columns, 8 classes, speaker offsets, inner folds grouped by speaker) for several training
sizes and grid sizes, then projects whole LOSO runs: 2 cores (2 fold processes), 16 cores,
and 64 SLURM fold jobs of 2 cores each.

    python bench/bench_curve.py [--clips 500 1000 2000 4000] [--grids 1 3 11] [--speakers 10 24 50 200]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

C_VALUES = [0.0001, 0.000316, 0.001, 0.003162, 0.01, 0.031623, 0.1, 0.316228, 1.0, 3.162278, 10.0]


def data(n: int, p: int, n_speakers: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 8
    speakers = rng.integers(0, n_speakers, n)
    x = rng.normal(size=(n, p))
    x[:, :64] += 0.6 * np.eye(8)[y] @ rng.normal(size=(8, 64))
    x += 0.5 * rng.normal(size=(n_speakers, p))[speakers]
    return x, y, speakers.astype(str)


def fit_seconds(n: int, p: int, grid: int) -> float:
    from serflow.models.pipeline import fit_model

    x, y, g = data(n, p, 24)
    start = time.perf_counter()
    fit_model("logreg", x, y, g, grid={"C": C_VALUES[:: max(1, 11 // grid)][:grid]}, class_weight="balanced")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, nargs="+", default=[500, 1000, 2000, 4000])
    ap.add_argument("--grids", type=int, nargs="+", default=[1, 3, 11])
    ap.add_argument("--speakers", type=int, nargs="+", default=[10, 24, 50, 200])
    ap.add_argument("--columns", type=int, default=3213)
    args = ap.parse_args()
    from serflow.runtime import limit_threads

    limit_threads(1)
    print(f"one fit (search + refit), {args.columns} columns, one thread:")
    measured = {}
    for grid in args.grids:
        for n in args.clips:
            measured[n, grid] = fit_seconds(n, args.columns, grid)
            print(f"  {n:>6} training clips, {grid:>2} grid points: {measured[n, grid]:7.1f} s", flush=True)
    # Beyond the largest measured size the time of a fit is extrapolated linearly in clips.
    print("\nprojected LOSO run (fits = speakers + 1), minutes:")
    print("  clips  speakers  grid  2 cores   16 cores   64 jobs x 2 cores")
    for grid in args.grids:
        largest = max(args.clips)
        for n in [*args.clips, 20000]:
            per_fit = measured.get((n, grid), measured[largest, grid] * n / largest)
            for speakers in args.speakers:
                two = per_fit * math.ceil(speakers / 2) + per_fit
                sixteen = per_fit * math.ceil(speakers / 16) + per_fit
                jobs = per_fit * math.ceil(speakers / 128) + per_fit
                mark = "" if (n, grid) in measured else "  (clips extrapolated)"
                minutes = f"{two / 60:8.1f} {sixteen / 60:10.1f} {jobs / 60:12.1f}"
                print(f"  {n:>6} {speakers:>8} {grid:>5} {minutes}{mark}")


if __name__ == "__main__":
    main()
