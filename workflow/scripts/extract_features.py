from serflow.runtime import start_job

log = start_job(snakemake.log[0], snakemake.threads)

from serflow.augmentation import Augmentation
from serflow.corpus.manifest import read_shard
from serflow.features import REGISTRY
from serflow.features.extraction import extract_shard
from serflow.features.tables import write_shard

augmentation = snakemake.params.get("augmentation")
augmentation = augmentation and Augmentation.from_config(augmentation["name"], augmentation)
extractor = REGISTRY[snakemake.wildcards.extractor](**snakemake.params.extractor)
shard = read_shard(snakemake.input.shard)
ids = [row["id"] for row in shard]
matrix, errors, stats = extract_shard(
    extractor,
    ids,
    [row["path"] for row in shard],
    [row["checksum"] for row in shard],
    snakemake.params.cache_dir,
    on_bad_file=snakemake.params.on_bad_file,
    augmentation=augmentation,
)
write_shard(snakemake.output[0], ids, matrix, errors, extractor, stats)
log.info("%s: %s", extractor.name, stats)
for clip, err in zip(ids, errors):
    if err:
        log.warning("failed %s: %s", clip, err)
