from serflow.runtime import start_job

log = start_job(snakemake.log[0], snakemake.threads)

import json
import os

from serflow.outputs.submission import write_submissions

runs = snakemake.params.runs
test_split = None
if snakemake.input.speakers:
    with open(snakemake.input.speakers[0], encoding="utf-8") as f:
        test_split = json.load(f).get("test_split")
    if test_split is None:
        log.warning(
            "%s has no test_split (written by an older serflow, or no test clip has a voiceprint):"
            " the best run is chosen by %s alone; --forcerun speakers rechecks the test split",
            snakemake.input.speakers[0],
            snakemake.params.metric,
        )
os.makedirs(snakemake.output.files, exist_ok=True)
summary = write_submissions(
    snakemake.input.manifest,
    {run: paths for run, paths in zip(runs, zip(snakemake.input.metrics, snakemake.input.test))},
    {run: os.path.join(snakemake.output.files, f"{run}.csv") for run in runs},
    snakemake.output.best,
    snakemake.output.summary,
    snakemake.params.dataset,
    snakemake.params.sample,
    snakemake.params.metric,
    test_split,
    snakemake.params.prefer_domain_norm,
    snakemake.input.comparison,
)
for run, info in summary["runs"].items():
    if info["missing"]:
        log.warning(
            "%s: %d test id(s) without a prediction got %r",
            run,
            len(info["missing"]),
            summary["fallback_label"],
        )
log.info(
    "best run (%s): %s (%.3f), %s, %s, %s speakers, normalisation: %s",
    summary["best_reason"],
    summary["best"],
    summary["best_score"],
    summary["best_protocol"],
    summary["best_trust"],
    summary["best_speakers"],
    summary["best_normalisation"],
)
