from serflow.runtime import start_job

log = start_job(snakemake.log[0], snakemake.threads)

from serflow.corpus.adapters import ADAPTERS

ds = snakemake.params.dataset
out = ADAPTERS[ds["adapter"]].generate(ds, snakemake.output[0])
log.info("%s corpus written to %s", ds["adapter"], out)
