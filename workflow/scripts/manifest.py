from serflow.runtime import start_job

log = start_job(snakemake.log[0], snakemake.threads)

from serflow.corpus.adapters import read_entries
from serflow.corpus.manifest import build_manifest, write_shards
from serflow.corpus.probes import ProbeCache

entries = read_entries(snakemake.params.dataset)
probes = ProbeCache(snakemake.params.probes)
manifest, rejected = build_manifest(
    entries,
    min_samples=snakemake.params.min_samples,
    sample_rate=snakemake.params.sample_rate,
    on_bad_file=snakemake.params.on_bad_file,
    probes=probes,
    threads=snakemake.threads,
)
probes.save()
log.info("%d files probed, %d earlier probes reused", probes.misses, probes.hits)
manifest.to_parquet(snakemake.output.manifest, index=False)
rejected.to_csv(snakemake.output.rejected, index=False)
write_shards(manifest, snakemake.output.shards, snakemake.output.digests)
log.info("%d clips in the manifest, %d rejected", len(manifest), len(rejected))
for row in rejected.itertuples():
    log.warning("rejected %s: %s", row.path, row.reason)
