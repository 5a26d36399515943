rule report:
    input:
        unpack(report_inputs),
    output:
        "results/report.html",
    log:
        "logs/report.log",
    conda:
        "../envs/serflow.yaml"
    params:
        datasets=list(DATASETS),
        runs=RUN_NAMES,
        metrics={name: ev["metric"] for name, ev in DATASET_EVALUATION.items()},
    script:
        "../scripts/report.py"
