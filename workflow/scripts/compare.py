from serflow.runtime import start_job

log = start_job(snakemake.log[0], snakemake.threads)

import json

from serflow.outputs.comparisons import describe_runner_up, write_comparison

test_split = None
if snakemake.input.speakers:
    with open(snakemake.input.speakers[0], encoding="utf-8") as f:
        test_split = json.load(f).get("test_split")
runs = snakemake.params.runs
comparison = write_comparison(
    dict(zip(runs, zip(snakemake.input.metrics, snakemake.input.predictions))),
    snakemake.output[0],
    snakemake.params.metric,
    test_split,
    snakemake.params.prefer_domain_norm,
    snakemake.params.n_bootstrap,
    snakemake.params.random_state,
)
log.info(
    "best %s; %d of %d other runs not distinguishable from it; %s",
    comparison["best"],
    len(comparison["not_distinguishable"]),
    len(runs) - 1,
    describe_runner_up(comparison),
)
