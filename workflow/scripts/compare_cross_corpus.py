from serflow.runtime import start_job

log = start_job(snakemake.log[0], snakemake.threads)

import json

import pandas as pd

from serflow.models.cross_corpus import compare_cells
from serflow.models.training import dumps_metrics

results = {}
for path in snakemake.input.results:
    with open(path, encoding="utf-8") as f:
        result = json.load(f)
    results[result["run"]] = result
predictions = {run: pd.read_parquet(p) for run, p in zip(results, snakemake.input.predictions)}
cells = compare_cells(
    results, predictions, n_boot=snakemake.params.n_bootstrap, seed=snakemake.params.random_state
)
with open(snakemake.output[0], "w", encoding="utf-8") as f:
    f.write(dumps_metrics({"cells": cells}))
for cell in cells:
    close = [r for r, c in cell["runs"].items() if r != cell["best"] and not c.get("distinguishable")]
    log.info(
        "%s -> %s: best %s; %d of %d other runs not distinguishable from it",
        cell["train"],
        cell["test"],
        cell["best"],
        len(close),
        len(cell["runs"]) - 1,
    )
