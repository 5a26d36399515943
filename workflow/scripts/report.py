from serflow.runtime import start_job

log = start_job(snakemake.log[0], snakemake.threads)

import json

from serflow.features.tables import package_versions
from serflow.models.training import MODEL_PACKAGES
from serflow.outputs.report import config_text, dataset_section, extractor_table, render_report

out = snakemake.output[0]
sections = []
for name, info in snakemake.params.datasets.items():
    sections.append(
        dataset_section(
            name,
            info["paths"],
            info["runs"],
            out,
            info["metric"],
            info["label_map"],
            info["sample_rate"],
            warnings=info["warnings"],
        )
    )
provenance = {
    "config": config_text(snakemake.config),
    "versions": package_versions((*MODEL_PACKAGES, "librosa", "soundfile", "soxr", "pyarrow", "snakemake")),
    "extractor": extractor_table(
        snakemake.params.extractors, {n: i["extractors"] for n, i in snakemake.params.datasets.items()}
    ),
}
cross = [json.loads(open(p, encoding="utf-8").read()) for p in snakemake.input.cross_corpus]
cells = [
    c
    for p in snakemake.input.cross_corpus_comparison
    for c in json.loads(open(p, encoding="utf-8").read())["cells"]
]
with open(out, "w", encoding="utf-8") as f:
    f.write(render_report(sections, provenance, cross_corpus=cross, cross_corpus_cells=cells))
log.info("report written to %s", out)
