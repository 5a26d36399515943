from serflow.runtime import start_job

log = start_job(snakemake.log[0], snakemake.threads)

import json

import joblib
import pandas as pd

from serflow.models.fusion import final_combiner, fuse_runs, fuse_test, fusion_bundle
from serflow.models.training import dumps_metrics, importance_table

wc, spec = snakemake.wildcards, snakemake.params.fusion
runs, method = spec["runs"], spec["method"]
predictions = {r: pd.read_parquet(p) for r, p in zip(runs, snakemake.input.predictions)}
facts = {r: json.loads(open(p, encoding="utf-8").read()) for r, p in zip(runs, snakemake.input.cv)}
fused, out = fuse_runs(predictions, facts, method)
out = {"dataset": wc.dataset, "feature_set": "fusion", "run": f"fusion-{wc.fusion}", **out}
fused.to_parquet(snakemake.output.predictions, index=False)
with open(snakemake.output.cv, "w", encoding="utf-8") as f:
    f.write(dumps_metrics(out))
log.info("%s of %s: %d clips", method, ", ".join(runs), len(fused))

combiner = final_combiner(predictions, facts, method)
tests = {r: pd.read_parquet(p) for r, p in zip(runs, snakemake.input.test)}
fuse_test(tests, combiner, out["labels"]).to_parquet(snakemake.output.test, index=False)
first = joblib.load(snakemake.input.models[0])
info = {"dataset": wc.dataset, "feature_set": "fusion"}
if combiner.method != method:
    log.warning("one fold: nothing to fit a %s combiner on, so the fusion is the mean", method)
bundle = fusion_bundle(runs, combiner.method, combiner, out["labels"], first, info)
joblib.dump(bundle, snakemake.output.model)
importance_table(bundle).to_csv(snakemake.output.importance, index=False)
log.info("final combiner: %s", combiner.describe())
