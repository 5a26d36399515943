from serflow.runtime import start_job

log = start_job(snakemake.log[0], snakemake.threads)

from serflow.report import dataset_section, render_report

out = snakemake.output[0]
sections = [
    dataset_section(
        name,
        snakemake.input[f"{name}_manifest"],
        snakemake.input[f"{name}_rejected"],
        dict(zip(snakemake.params.runs, snakemake.input[f"{name}_metrics"])),
        snakemake.params.metrics[name],
        out,
        snakemake.input.get(f"{name}_submissions"),
    )
    for name in snakemake.params.datasets
]
with open(out, "w", encoding="utf-8") as f:
    f.write(render_report(sections))
log.info("report written to %s", out)
