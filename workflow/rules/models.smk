rule train_folds:
    input:
        "results/{dataset}/features/{feature_set}.parquet",
    output:
        "results/{dataset}/runs/{feature_set}-{model}/folds/{block}.joblib",
    log:
        "logs/{dataset}/train_folds/{feature_set}-{model}/{block}.log",
    benchmark:
        "benchmarks/{dataset}/train_folds/{feature_set}-{model}/{block}.tsv"
    conda:
        "../envs/serflow.yaml"
    threads: train_threads
    resources:
        mem_mb=train_mem_mb,
        runtime=train_runtime,
    params:
        model=model_config,
        evaluation=evaluation_config,
        block=lambda wc: int(wc.block),
        n_blocks=config["training"]["fold_jobs"],
    script:
        "../scripts/train_folds.py"


rule train:
    input:
        table="results/{dataset}/features/{feature_set}.parquet",
        folds=fold_blocks,
    output:
        predictions="results/{dataset}/runs/{feature_set}-{model}/predictions.parquet",
        metrics=report(
            "results/{dataset}/runs/{feature_set}-{model}/metrics.json",
            category="Runs",
            subcategory="{dataset}",
            caption="../report/metrics.rst",
            labels={"feature set": "{feature_set}", "model": "{model}"},
        ),
        model="results/{dataset}/runs/{feature_set}-{model}/model.joblib",
        test="results/{dataset}/runs/{feature_set}-{model}/test_predictions.parquet",
        importance="results/{dataset}/runs/{feature_set}-{model}/importance.csv",
        card="results/{dataset}/runs/{feature_set}-{model}/model_card.md",
    log:
        "logs/{dataset}/train/{feature_set}-{model}.log",
    benchmark:
        "benchmarks/{dataset}/train/{feature_set}-{model}.tsv"
    conda:
        "../envs/serflow.yaml"
    threads: train_threads
    resources:
        mem_mb=train_mem_mb,
        runtime=train_runtime,
    params:
        model=model_config,
        evaluation=evaluation_config,
    script:
        "../scripts/train.py"


rule submissions:
    input:
        unpack(submission_inputs),
    output:
        files=directory("results/{dataset}/submissions"),
        best=report(
            "results/{dataset}/submission.csv",
            category="Submissions",
            subcategory="{dataset}",
            caption="../report/submission.rst",
        ),
        summary="results/{dataset}/submissions.json",
    log:
        "logs/{dataset}/submissions.log",
    localrule: True
    conda:
        "../envs/serflow.yaml"
    params:
        runs=run_names,
        dataset=dataset_config,
        sample=sample_submission,
        metric=lambda wc: DATASETS[wc.dataset].evaluation["metric"],
    script:
        "../scripts/submissions.py"
