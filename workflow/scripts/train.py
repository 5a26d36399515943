from serflow.runtime import start_job

log = start_job(snakemake.log[0], snakemake.threads)

from pathlib import Path

import joblib

from serflow.features.tables import read_metadata
from serflow.models.training import (
    dumps_metrics,
    fit_final,
    fit_folds,
    gather_run,
    importance_table,
    load_copies,
    load_table,
    prepare_run,
)

wc = snakemake.wildcards
table, columns = load_table(snakemake.input.table)
model, evaluation = snakemake.params.model, snakemake.params.evaluation
# The model's library threads (not a param: changing them must rerun nothing).
model_threads = snakemake.config["models"].get(wc.model, {}).get("threads", 1)
log.info("%s-%s: %d clips x %d features, %s", wc.feature_set, wc.model, len(table), len(columns), model)

copies = load_copies(snakemake.input.augmented, columns) if snakemake.input.get("augmented") else None
if copies is not None:
    log.info("%d augmented copies of %d clips", len(copies), copies["source"].nunique())
run = prepare_run(table, columns, model, evaluation, copies)
if snakemake.input.folds:  # fitted by the run's fold jobs
    results = {}
    for path in snakemake.input.folds:
        results.update(joblib.load(path))
    log.info("gathered %d folds from %d fold jobs", len(results), len(snakemake.input.folds))
else:
    workers = max(1, snakemake.threads // model_threads)
    log.info("%d outer folds in %d process(es)", len(run.folds), min(workers, len(run.folds)))
    results = fit_folds(run, workers=workers, model_threads=model_threads)
predictions, facts = gather_run(run, results, len(columns))
facts = {"dataset": wc.dataset, "feature_set": wc.feature_set, "run": f"{wc.feature_set}-{wc.model}", **facts}
predictions.to_parquet(snakemake.output.predictions, index=False)
with open(snakemake.output.cv, "w", encoding="utf-8") as f:
    f.write(dumps_metrics(facts))
log.info("%s, %d folds of %d clips", facts["protocol"], facts["n_folds"], facts["n_clips"])

info = {
    "dataset": wc.dataset,
    "feature_set": wc.feature_set,
    "features": read_metadata(snakemake.input.table),
    "cache_dir": str(Path(snakemake.config["cache_dir"]).resolve()),  # reused by serflow predict
}
bundle, test_predictions = fit_final(table, columns, model, evaluation, model_threads, info, copies)
joblib.dump(bundle, snakemake.output.model)
test_predictions.to_parquet(snakemake.output.test, index=False)
importance_table(bundle).to_csv(snakemake.output.importance, index=False)
log.info("final model refit; %d unlabelled clips predicted", len(test_predictions))
