# serflow: speech-emotion recognition from handcrafted features.
# Run: snakemake --cores 16   (config: config/config.yaml, documented in config/README.md)


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/augment.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
    localrule: True


onsuccess:
    from serflow.outputs.summary import closing_summary

    print(
        closing_summary(
            {
                n: (ds.run_names, ds.evaluation["metric"], ds.warnings)
                for n, ds in DATASETS.items()
            },
            report=config["report"],
        ),
        file=sys.stderr,
    )
