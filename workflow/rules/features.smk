rule extract_features:
    input:
        # The list is read, its digest decides reruns: Snakemake compares checksums of
        # inputs up to 1 MB only, so one new clip reruns one shard job at any list size.
        shard=ancient("results/{dataset}/shards/{shard}.tsv"),
        digest="results/{dataset}/shards/{shard}.digest",
    output:
        "results/{dataset}/features/{extractor}/{shard}.parquet",
    log:
        "logs/{dataset}/extract/{extractor}/{shard}.log",
    benchmark:
        "benchmarks/{dataset}/extract/{extractor}/{shard}.tsv"
    conda:
        "../envs/serflow.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: extractor(wc).mem_mb,
        runtime=lambda wc, input: extract_runtime(extractor(wc), shard_size(input)),
        disk_mb=lambda wc, input: extract_disk_mb(shard_size(input)),
        gpu=extract_gpus,
    params:
        extractor=lambda wc: extractor(wc).params(),
        cache_dir=config["cache_dir"],
        on_bad_file=on_bad_file,
    script:
        "../scripts/extract_features.py"


rule speakers:
    input:
        manifest="results/{dataset}/manifest.parquet",
        shards=voice_shards,
    output:
        groups="results/{dataset}/speakers.parquet",
        summary=report(
            "results/{dataset}/speakers.json",
            category="Data",
            subcategory="{dataset}",
            caption="../report/speakers.rst",
        ),
    log:
        "logs/{dataset}/speakers.log",
    benchmark:
        "benchmarks/{dataset}/speakers.tsv"
    conda:
        "../envs/serflow.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        settings=lambda wc: dataset_config(wc).get("speaker_clusters", {}),
        random_state=lambda wc: DATASETS[wc.dataset].evaluation["random_state"],
    script:
        "../scripts/speakers.py"


# A checkpoint: once a table is rebuilt, runs are re-planned and those whose table
# content (the digest) did not change are not refitted (say, after a parameter that
# only other columns depend on).
checkpoint feature_table:
    input:
        manifest="results/{dataset}/manifest.parquet",
        shards=table_shards,
        speakers=speaker_groups,
    output:
        table="results/{dataset}/features/{feature_set}.parquet",
        digest="results/{dataset}/features/{feature_set}.digest",
    log:
        "logs/{dataset}/feature_table/{feature_set}.log",
    benchmark:
        "benchmarks/{dataset}/feature_table/{feature_set}.tsv"
    conda:
        "../envs/serflow.yaml"
    resources:
        mem_mb=lambda wc, input: table_mem_mb(input.size_mb),
        runtime=10,
    params:
        table=table_params,
    script:
        "../scripts/feature_table.py"


rule rejected:
    input:
        manifest="results/{dataset}/manifest.parquet",
        rejected="results/{dataset}/manifest_rejected.csv",
        shards=all_shards,
    output:
        report(
            "results/{dataset}/rejected.csv",
            category="Data",
            subcategory="{dataset}",
            caption="../report/rejected.rst",
        ),
    log:
        "logs/{dataset}/rejected.log",
    localrule: True
    conda:
        "../envs/serflow.yaml"
    script:
        "../scripts/rejected.py"
