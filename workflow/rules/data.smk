rule corpus:
    output:
        directory("results/{dataset}/corpus"),
    log:
        "logs/{dataset}/corpus.log",
    conda:
        "../envs/serflow.yaml"
    resources:
        mem_mb=500,
        runtime=10,
        disk_mb=lambda wc: 50 + n_listed(wc),
    params:
        dataset=dataset_config,
    script:
        "../scripts/corpus.py"


checkpoint manifest:
    input:
        manifest_inputs,
    output:
        manifest="results/{dataset}/manifest.parquet",
        rejected="results/{dataset}/manifest_rejected.csv",
        shards=expand("results/{{dataset}}/shards/{shard}.tsv", shard=SHARDS),
        digests=expand("results/{{dataset}}/shards/{shard}.digest", shard=SHARDS),
    log:
        "logs/{dataset}/manifest.log",
    benchmark:
        "benchmarks/{dataset}/manifest.tsv"
    conda:
        "../envs/serflow.yaml"
    threads: 8
    resources:
        mem_mb=1000,
        runtime=lambda wc: manifest_runtime(n_listed(wc)),
    params:
        dataset=dataset_config,
        probes=lambda wc: os.path.join(
            config["cache_dir"], "probes", f"{wc.dataset}.parquet"
        ),
        listing=corpus_listing,
        min_samples=lambda wc: DATASETS[wc.dataset].features.min_samples,
        sample_rate=lambda wc: DATASETS[wc.dataset].features.sample_rate,
        on_bad_file=on_bad_file,
    script:
        "../scripts/manifest.py"
