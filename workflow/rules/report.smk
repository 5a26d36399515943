localrules:
    report,


rule report:
    input:
        unpack(report_inputs),
    output:
        report(
            "results/report.html",
            category="Report",
            caption="../report/report_html.rst",
        ),
    log:
        "logs/report.log",
    conda:
        "../envs/serflow.yaml"
    params:
        datasets=report_datasets(),
        extractor=FEATURES.to_dict(),
    script:
        "../scripts/report.py"
