from serflow.runtime import start_job

log = start_job(snakemake.log[0], snakemake.threads)

from serflow.demo import generate_demo_corpus

ds = snakemake.params.dataset
kwargs = {k: ds[k] for k in ("n_train", "n_test", "n_speakers", "seed") if k in ds}
if "duration_range" in ds:
    kwargs["duration_range"] = tuple(ds["duration_range"])
out = generate_demo_corpus(snakemake.output[0], **kwargs)
log.info("demo corpus written to %s with %s", out, kwargs)
