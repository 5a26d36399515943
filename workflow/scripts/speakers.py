from serflow.runtime import start_job

log = start_job(snakemake.log[0], snakemake.threads)

import json

from serflow.corpus.speakers import estimate_speakers

groups, summary = estimate_speakers(
    snakemake.input.manifest,
    snakemake.input.shards,
    snakemake.params.settings,
    random_state=snakemake.params.random_state,
)
groups.to_parquet(snakemake.output.groups, index=False)
with open(snakemake.output.summary, "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=2, sort_keys=True)
log.info("%d clips in %d estimated speaker groups: %s", summary["n_clips"], summary["n_groups"], summary)
