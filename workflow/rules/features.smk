rule extract_features:
    input:
        "results/{dataset}/shards/{shard}.tsv",
    output:
        "results/{dataset}/features/shards/{shard}.parquet",
    log:
        "logs/{dataset}/extract/{shard}.log",
    benchmark:
        "benchmarks/{dataset}/extract/{shard}.tsv"
    conda:
        "../envs/serflow.yaml"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=extract_runtime,
        disk_mb=extract_disk_mb,
    params:
        features=lambda wc: DATASET_FEATURES[wc.dataset].to_dict(),
        cache_dir=config["cache_dir"],
        on_bad_file=on_bad_file,
    script:
        "../scripts/extract_features.py"


rule feature_table:
    input:
        manifest="results/{dataset}/manifest.parquet",
        shards=shard_features,
    output:
        "results/{dataset}/features/{feature_set}.parquet",
    log:
        "logs/{dataset}/feature_table/{feature_set}.log",
    benchmark:
        "benchmarks/{dataset}/feature_table/{feature_set}.tsv"
    conda:
        "../envs/serflow.yaml"
    resources:
        mem_mb=table_mem_mb,
        runtime=10,
    params:
        groups=lambda wc: list(FEATURE_GROUPS[wc.feature_set]),
        features=lambda wc: DATASET_FEATURES[wc.dataset].to_dict(),
    script:
        "../scripts/feature_table.py"


localrules:
    rejected,


rule rejected:
    input:
        manifest="results/{dataset}/manifest.parquet",
        rejected="results/{dataset}/manifest_rejected.csv",
        shards=shard_features,
    output:
        report(
            "results/{dataset}/rejected.csv",
            category="Data",
            subcategory="{dataset}",
            caption="../report/rejected.rst",
        ),
    log:
        "logs/{dataset}/rejected.log",
    conda:
        "../envs/serflow.yaml"
    script:
        "../scripts/rejected.py"
