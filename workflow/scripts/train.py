from serflow.runtime import start_job

log = start_job(snakemake.log[0], snakemake.threads)

import joblib

from serflow.tables import read_metadata
from serflow.training import dumps_metrics, evaluate_run, fit_final, importance_table, load_table

wc = snakemake.wildcards
table, columns = load_table(snakemake.input[0])
model, evaluation = snakemake.params.model, snakemake.params.evaluation
log.info("%s-%s: %d clips x %d features, %s", wc.feature_set, wc.model, len(table), len(columns), model)

predictions, metrics = evaluate_run(table, columns, model, evaluation, threads=snakemake.threads)
metrics = {
    "dataset": wc.dataset,
    "feature_set": wc.feature_set,
    "run": f"{wc.feature_set}-{wc.model}",
    **metrics,
}
predictions.to_parquet(snakemake.output.predictions, index=False)
with open(snakemake.output.metrics, "w", encoding="utf-8") as f:
    f.write(dumps_metrics(metrics))
log.info(
    "%s, %d folds: UAR %.3f, accuracy %.3f",
    metrics["protocol"],
    metrics["n_folds"],
    metrics["uar"],
    metrics["accuracy"],
)

info = {"dataset": wc.dataset, "feature_set": wc.feature_set, "features": read_metadata(snakemake.input[0])}
bundle, test_predictions = fit_final(table, columns, model, evaluation, snakemake.threads, info)
joblib.dump(bundle, snakemake.output.model)
test_predictions.to_parquet(snakemake.output.test, index=False)
importance_table(bundle).to_csv(snakemake.output.importance, index=False)
log.info("final model refit; %d unlabelled clips predicted", len(test_predictions))
