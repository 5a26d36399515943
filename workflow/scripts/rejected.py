from serflow.runtime import start_job

log = start_job(snakemake.log[0], snakemake.threads)

import pandas as pd

from serflow.features.tables import collect_rejected

rejected = collect_rejected(
    snakemake.input.manifest,
    pd.read_csv(snakemake.input.rejected, dtype=str),
    snakemake.input.shards,
)
rejected.to_csv(snakemake.output[0], index=False)
log.info("%d rejected files", len(rejected))
