from serflow.runtime import start_job

log = start_job(snakemake.log[0], snakemake.threads)

import joblib

from serflow.models.training import fit_folds, load_copies, load_table, prepare_run

table, columns = load_table(snakemake.input.table)
copies = load_copies(snakemake.input.augmented, columns) if snakemake.input.get("augmented") else None
run = prepare_run(table, columns, snakemake.params.model, snakemake.params.evaluation, copies)
block, n_blocks = snakemake.params.block, snakemake.params.n_blocks
which = [k for k in range(len(run.folds)) if k % n_blocks == block]
model_threads = snakemake.config["models"].get(snakemake.wildcards.model, {}).get("threads", 1)
workers = max(1, snakemake.threads // model_threads)
log.info("folds %s of %d in %d process(es)", which, len(run.folds), min(workers, max(1, len(which))))
results = fit_folds(run, which, workers=workers, model_threads=model_threads)
joblib.dump(results, snakemake.output[0])
