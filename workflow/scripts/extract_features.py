from serflow.runtime import start_job

log = start_job(snakemake.log[0], snakemake.threads)

from serflow.extraction import extract_shard
from serflow.features import FeatureParams, feature_names
from serflow.manifest import read_shard
from serflow.tables import write_shard

params = FeatureParams.from_config(snakemake.params.features)
shard = read_shard(snakemake.input[0])
ids = [row["id"] for row in shard]
matrix, errors, stats = extract_shard(
    ids,
    [row["path"] for row in shard],
    [row["checksum"] for row in shard],
    params,
    snakemake.params.cache_dir,
    on_bad_file=snakemake.params.on_bad_file,
)
write_shard(snakemake.output[0], ids, matrix, errors, feature_names(params), stats, params)
log.info("%s", stats)
for clip, err in zip(ids, errors):
    if err:
        log.warning("failed %s: %s", clip, err)
