from serflow.runtime import start_job

log = start_job(snakemake.log[0], snakemake.threads)

import pyarrow.parquet as pq

from serflow.features import FeatureParams, feature_names, select_columns
from serflow.tables import merge_feature_table

params = FeatureParams.from_config(snakemake.params.features)
columns = select_columns(feature_names(params), snakemake.params.groups)
table = merge_feature_table(
    snakemake.input.manifest,
    snakemake.input.shards,
    columns,
    {
        "feature_set": snakemake.wildcards.feature_set,
        "groups": list(snakemake.params.groups),
        "extractor": params.to_dict(),
        "cache_key": params.cache_key(),
    },
)
pq.write_table(table, snakemake.output[0])
log.info("%d rows x %d features", table.num_rows, len(columns))
