rule report:
    input:
        unpack(report_inputs),
    output:
        report(
            config["report"],
            category="Report",
            caption="../report/report_html.rst",
        ),
    log:
        "logs/report.log",
    localrule: True
    conda:
        "../envs/serflow.yaml"
    params:
        datasets=report_datasets(),
        extractors=common_extractors(),
    script:
        "../scripts/report.py"
