"""The grid search before and after its speed-ups, on the same feature tables.

For each table (Parquet, as the workflow writes it) and each model of a recipe, the LOSO
evaluation runs in this process, one process and one thread, three ways:

  before     every grid point fits on all columns, from scratch (GridSearchCV);
  row space  one SVD per inner training set shared by every grid point (``RowSpace``);
  path       and the grid walked in increasing C, each fit warm-started (``PathSearch``);
  tol X      (with ``--tol X``) the path with the solver's tolerance X instead of the
             model's own (``params: {tol: X}``): a different estimator, measured here.

Prints seconds, speed-up, UAR and the UAR difference of each against ``before``, and how
many outer folds chose the same parameters as ``before`` (``--skip-before``: against ``path``).

    python bench/bench_search.py TABLE.parquet [TABLE.parquet ...] [--recipe config/recipes/emodb_best.yaml]
        [--tol 0.001] [--skip-before]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import yaml
from benchlib import REPO


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tables", type=Path, nargs="+")
    ap.add_argument("--recipe", type=Path, default=REPO / "config/recipes/emodb_best.yaml")
    ap.add_argument("--tol", type=float, nargs="*", default=[])
    ap.add_argument("--skip-before", action="store_true", help="only the path (and tolerance) variants")
    args = ap.parse_args()
    from serflow.models import kinds as models
    from serflow.models.training import evaluate_run, load_table
    from serflow.runtime import limit_threads

    limit_threads(1)
    recipe = yaml.safe_load(args.recipe.read_text())
    evaluation = {**recipe.get("evaluation", {}), "n_bootstrap": 100}
    kinds = dict(models.MODEL_KINDS)
    variants = {  # name -> (change of the model kinds, change of the model's params)
        "before": (lambda k: replace(k, row_space=lambda p: False, path=None), {}),
        "row space": (lambda k: replace(k, path=None), {}),
        "path": (lambda k: k, {}),
        **{f"tol {t:g}": (lambda k: k, {"tol": t}) for t in args.tol},
    }
    if args.skip_before:
        variants = {k: v for k, v in variants.items() if k not in ("before", "row space")}
    print(
        f"{'table':<28} {'model':<12} {'variant':<10} {'seconds':>8} {'speed-up':>8} {'UAR':>6} {'diff':>7}"
        "  same choice"
    )
    for path in args.tables:
        table, columns = load_table(path)
        for name, model in recipe["models"].items():
            base = None
            for variant, (change, params) in variants.items():
                models.MODEL_KINDS.update({k: change(v) for k, v in kinds.items()})
                run = {**model, "params": {**model.get("params", {}), **params}}
                start = time.perf_counter()
                _, metrics = evaluate_run(table, columns, run, evaluation)
                took = time.perf_counter() - start
                models.MODEL_KINDS.update(kinds)
                picks = [f["params"] for f in metrics["folds"]]
                base = base or (took, metrics["uar"], picks)
                same = sum(a == b for a, b in zip(picks, base[2]))
                where = f"{path.parent.parent.name}/{path.name}"
                print(
                    f"{where:<28} {name:<12} {variant:<10} {took:8.1f} {base[0] / took:8.1f} "
                    f"{metrics['uar']:6.3f} {metrics['uar'] - base[1]:+7.3f}  {same}/{len(picks)}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
