from serflow.runtime import start_job

log = start_job(snakemake.log[0], snakemake.threads)

from pathlib import Path

import pyarrow.parquet as pq

from serflow.features import REGISTRY, select_columns
from serflow.features.tables import merge_feature_table, table_digest

spec = snakemake.params.table
shards, column_groups = {}, {}
for name, desc in spec["extractors"].items():
    extractor = REGISTRY[name](**desc["params"])
    groups = extractor.column_groups()
    columns = select_columns(groups, spec["groups"])
    paths = [p for p in snakemake.input.shards if Path(p).parent.name == name]
    shards[name] = (paths, columns)
    column_groups.update({c: groups[c] for c in columns})
table = merge_feature_table(
    snakemake.input.manifest,
    shards,
    {
        "feature_set": snakemake.wildcards.feature_set,
        "groups": spec["groups"],
        "extractors": spec["extractors"],
        "column_groups": column_groups,
        "speakers_estimated": spec["speakers"] == "cluster",
    },
    speakers=snakemake.input.speakers or None,
)
pq.write_table(table, snakemake.output.table)
Path(snakemake.output.digest).write_text(table_digest(table) + "\n")
log.info("%d rows x %d features from %s", table.num_rows, len(column_groups), ", ".join(shards))
