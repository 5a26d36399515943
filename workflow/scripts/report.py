from serflow.runtime import start_job

log = start_job(snakemake.log[0], snakemake.threads)

import yaml

from serflow.report import dataset_section, extractor_table, render_report
from serflow.tables import package_versions
from serflow.training import MODEL_PACKAGES

out = snakemake.output[0]
sections = []
for name, info in snakemake.params.datasets.items():
    paths = {
        "manifest": snakemake.input[f"{name}_manifest"],
        "rejected": snakemake.input[f"{name}_rejected"],
        "metrics": snakemake.input[f"{name}_metrics"],
        "importance": snakemake.input[f"{name}_importance"],
        "shards": snakemake.input[f"{name}_shards"],
        "submissions": snakemake.input.get(f"{name}_submissions"),
        "speakers": snakemake.input.get(f"{name}_speakers"),
        "tables": info["tables"],
        "models": info["models"],
        "benchmarks": info["benchmarks"],
    }
    sections.append(
        dataset_section(
            name,
            paths,
            info["runs"],
            out,
            info["metric"],
            info["label_map"],
            info["sample_rate"],
        )
    )
provenance = {
    "config": yaml.safe_dump(dict(snakemake.config), sort_keys=False, allow_unicode=True),
    "versions": package_versions((*MODEL_PACKAGES, "librosa", "soundfile", "soxr", "pyarrow", "snakemake")),
    "extractor": extractor_table(
        snakemake.params.extractors, {n: i["extractors"] for n, i in snakemake.params.datasets.items()}
    ),
}
with open(out, "w", encoding="utf-8") as f:
    f.write(render_report(sections, provenance))
log.info("report written to %s", out)
