from serflow.runtime import start_job

log = start_job(snakemake.log[0], snakemake.threads)

import json

from serflow.models.cross_corpus import cross_corpus, mean_off_diagonal
from serflow.models.training import dumps_metrics, load_copies, load_table

names = snakemake.params.datasets
loaded = {name: load_table(path) for name, path in zip(names, snakemake.input.tables)}
tables = {name: table for name, (table, _) in loaded.items()}
# augmented copies of each dataset's clips (a model with augment): used only where it trains
copies = {name: load_copies(path, loaded[name][1]) for name, path in zip(names, snakemake.input.augmented)}
own = {name: json.loads(open(p, encoding="utf-8").read()) for name, p in zip(names, snakemake.input.metrics)}
evaluation = snakemake.params.evaluation
result = cross_corpus(
    tables,
    own,
    snakemake.params.model,
    evaluation,
    n_bootstrap=snakemake.params.n_bootstrap,
    seed=evaluation["random_state"],
    leave_one_out=snakemake.params.leave_one_out,
    threads=snakemake.threads,
    copies=copies,
)
result.pop("predictions").to_parquet(snakemake.output.predictions, index=False)
result = {"run": f"{snakemake.wildcards.feature_set}-{snakemake.wildcards.model}", **result}
with open(snakemake.output.result, "w", encoding="utf-8") as f:
    f.write(dumps_metrics(result))
log.info(
    "%s across %s: mean off-diagonal UAR %.3f", result["run"], ", ".join(names), mean_off_diagonal(result)
)
