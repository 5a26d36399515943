# Augmented copies of training clips (a model's augment): listed from the manifest,
# extracted through each extractor's cache like clips, merged into one table per feature
# set that only the training sides of that model's folds read.


rule augment_listing:
    input:
        manifest="results/{dataset}/manifest.parquet",
    output:
        copies="results/{dataset}/augmented/{augmentation}/copies.parquet",
        shards=expand(
            "results/{{dataset}}/augmented/{{augmentation}}/shards/{shard}.tsv",
            shard=SHARDS,
        ),
        digests=expand(
            "results/{{dataset}}/augmented/{{augmentation}}/shards/{shard}.digest",
            shard=SHARDS,
        ),
    log:
        "logs/{dataset}/augment/{augmentation}/listing.log",
    localrule: True
    params:
        augmentation=augmentation_spec,
    run:
        from serflow.augmentation.listing import write_listing

        write_listing(
            input.manifest,
            params.augmentation,
            output.copies,
            output.shards,
            output.digests,
            log[0],
        )


use rule extract_features as extract_augmented with:
    input:
        shard=ancient("results/{dataset}/augmented/{augmentation}/shards/{shard}.tsv"),
        digest="results/{dataset}/augmented/{augmentation}/shards/{shard}.digest",
    output:
        "results/{dataset}/augmented/{augmentation}/features/{extractor}/{shard}.parquet",
    log:
        "logs/{dataset}/augment/{augmentation}/extract/{extractor}/{shard}.log",
    benchmark:
        "benchmarks/{dataset}/augment/{augmentation}/extract/{extractor}/{shard}.tsv"
    params:
        extractor=lambda wc: extractor(wc).params(),
        cache_dir=config["cache_dir"],
        on_bad_file=on_bad_file,
        augmentation=augmentation_spec,


rule augmented_table:
    input:
        manifest="results/{dataset}/augmented/{augmentation}/copies.parquet",
        shards=augmented_shards,
        speakers=[],
    output:
        table="results/{dataset}/augmented/{augmentation}/tables/{feature_set}.parquet",
        digest="results/{dataset}/augmented/{augmentation}/tables/{feature_set}.digest",
    log:
        "logs/{dataset}/augment/{augmentation}/table/{feature_set}.log",
    benchmark:
        "benchmarks/{dataset}/augment/{augmentation}/table/{feature_set}.tsv"
    conda:
        "../envs/serflow.yaml"
    resources:
        mem_mb=lambda wc, input: table_mem_mb(input.size_mb),
        runtime=10,
    params:
        table=table_params,
    script:
        "../scripts/feature_table.py"
