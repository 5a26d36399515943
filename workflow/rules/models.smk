# A run reads its table (ancient: the file's time does not matter) and reruns when the
# table's content digest changes.
TABLE = {
    "table": ancient("results/{dataset}/features/{feature_set}.parquet"),
    "digest": "results/{dataset}/features/{feature_set}.digest",
}


rule train_folds:
    input:
        **TABLE,
        augmented=augmented_table,
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
        gpu=train_gpus,
    params:
        model=model_config,
        evaluation=evaluation_config,
        block=lambda wc: int(wc.block),
        n_blocks=PLAN.fold_jobs,
    script:
        "../scripts/train_folds.py"


rule train:
    input:
        **TABLE,
        augmented=augmented_table,
        folds=fold_blocks,
    output:
        predictions="results/{dataset}/runs/{feature_set}-{model}/predictions.parquet",
        cv="results/{dataset}/runs/{feature_set}-{model}/cv.json",
        model="results/{dataset}/runs/{feature_set}-{model}/model.joblib",
        test="results/{dataset}/runs/{feature_set}-{model}/test_predictions.parquet",
        importance="results/{dataset}/runs/{feature_set}-{model}/importance.csv",
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
        gpu=train_gpus,
    params:
        model=model_config,
        evaluation=evaluation_config,
    script:
        "../scripts/train.py"


# Scores and intervals apart from the fit: changing n_bootstrap refits nothing. It runs
# in Snakemake's own process: a fresh one per run would cost seconds of imports.
rule score:
    input:
        predictions="results/{dataset}/runs/{feature_set}-{model}/predictions.parquet",
        cv="results/{dataset}/runs/{feature_set}-{model}/cv.json",
        model="results/{dataset}/runs/{feature_set}-{model}/model.joblib",
        # Only so that a rebuilt table re-plans this job too (Snakemake re-plans the
        # direct dependants of a checkpoint); an equal digest reruns nothing.
        digest=TABLE["digest"],
    output:
        metrics=report(
            "results/{dataset}/runs/{feature_set}-{model}/metrics.json",
            category="Runs",
            subcategory="{dataset}",
            caption="../report/metrics.rst",
            labels={"feature set": "{feature_set}", "model": "{model}"},
        ),
        card="results/{dataset}/runs/{feature_set}-{model}/model_card.md",
    log:
        "logs/{dataset}/score/{feature_set}-{model}.log",
    localrule: True
    params:
        n_bootstrap=lambda wc: DATASETS[wc.dataset].evaluation["n_bootstrap"],
    run:
        from serflow.outputs.scoring import score_files

        score_files(*input[:3], *output, params.n_bootstrap, log[0])


# A fusion run (fusions: in the config) combines the out-of-fold probabilities of named
# runs of the dataset; it has every output of a run, so it is compared, submitted and
# predicted with like the others.
rule fuse:
    input:
        predictions=lambda wc: fusion_files(wc, "predictions.parquet"),
        cv=lambda wc: fusion_files(wc, "cv.json"),
        test=lambda wc: fusion_files(wc, "test_predictions.parquet"),
        models=lambda wc: fusion_files(wc, "model.joblib"),
    output:
        predictions="results/{dataset}/runs/fusion-{fusion}/predictions.parquet",
        cv="results/{dataset}/runs/fusion-{fusion}/cv.json",
        model="results/{dataset}/runs/fusion-{fusion}/model.joblib",
        test="results/{dataset}/runs/fusion-{fusion}/test_predictions.parquet",
        importance="results/{dataset}/runs/fusion-{fusion}/importance.csv",
    log:
        "logs/{dataset}/fuse/{fusion}.log",
    localrule: True
    conda:
        "../envs/serflow.yaml"
    params:
        fusion=lambda wc: PLAN.fusions[wc.fusion],
    script:
        "../scripts/fuse.py"


use rule score as score_fusion with:
    input:
        predictions="results/{dataset}/runs/fusion-{fusion}/predictions.parquet",
        cv="results/{dataset}/runs/fusion-{fusion}/cv.json",
        model="results/{dataset}/runs/fusion-{fusion}/model.joblib",
    output:
        metrics=report(
            "results/{dataset}/runs/fusion-{fusion}/metrics.json",
            category="Runs",
            subcategory="{dataset}",
            caption="../report/metrics.rst",
            labels={"feature set": "fusion", "model": "{fusion}"},
        ),
        card="results/{dataset}/runs/fusion-{fusion}/model_card.md",
    log:
        "logs/{dataset}/score/fusion-{fusion}.log",


rule compare:
    input:
        unpack(compare_inputs),
    output:
        report(
            "results/{dataset}/comparison.json",
            category="Runs",
            subcategory="{dataset}",
            caption="../report/comparison.rst",
        ),
    log:
        "logs/{dataset}/compare.log",
    localrule: True
    conda:
        "../envs/serflow.yaml"
    params:
        runs=run_names,
        metric=lambda wc: DATASETS[wc.dataset].evaluation["metric"],
        prefer_domain_norm=lambda wc: DATASETS[wc.dataset].evaluation[
            "prefer_domain_norm"
        ],
        n_bootstrap=lambda wc: DATASETS[wc.dataset].evaluation["n_bootstrap"],
        random_state=lambda wc: DATASETS[wc.dataset].evaluation["random_state"],
    script:
        "../scripts/compare.py"


# cross_corpus: a run trained on each dataset holding it and tested on the others (a
# model per training corpus, fitted as the run's refit; the diagonal is each dataset's own
# cross-validation).
rule cross_corpus:
    input:
        tables=lambda wc: cross_corpus_files(wc, "table"),
        metrics=lambda wc: cross_corpus_files(wc, "metrics.json"),
        augmented=lambda wc: cross_corpus_files(wc, "augmented"),
    output:
        result=report(
            "results/cross_corpus/{feature_set}-{model}.json",
            category="Runs",
            subcategory="cross-corpus",
            caption="../report/cross_corpus.rst",
        ),
        predictions="results/cross_corpus/{feature_set}-{model}.parquet",
    log:
        "logs/cross_corpus/{feature_set}-{model}.log",
    benchmark:
        "benchmarks/cross_corpus/{feature_set}-{model}.tsv"
    conda:
        "../envs/serflow.yaml"
    threads: lambda wc: PLAN.models[wc.model].threads
    resources:
        mem_mb=lambda wc, input: 1000 + 20 * math.ceil(input.size_mb),
        runtime=60,
    params:
        datasets=lambda wc: PLAN.cross_corpus[f"{wc.feature_set}-{wc.model}"],
        model=model_config,
        evaluation=lambda wc: DATASETS[
            PLAN.cross_corpus[f"{wc.feature_set}-{wc.model}"][0]
        ].fit_evaluation,
        n_bootstrap=lambda wc: DATASETS[
            PLAN.cross_corpus[f"{wc.feature_set}-{wc.model}"][0]
        ].evaluation["n_bootstrap"],
        leave_one_out=PLAN.leave_one_out,
    script:
        "../scripts/cross_corpus.py"


# compare_cross_corpus: in each train x test cell, every cross-corpus run against the
# cell's best on the same test clips (paired, as compare).
rule compare_cross_corpus:
    input:
        results=lambda wc: cross_corpus_outputs(),
        predictions=lambda wc: cross_corpus_outputs("parquet"),
    output:
        report(
            "results/cross_corpus/comparison.json",
            category="Runs",
            subcategory="cross-corpus",
            caption="../report/cross_corpus_comparison.rst",
        ),
    log:
        "logs/cross_corpus/comparison.log",
    localrule: True
    conda:
        "../envs/serflow.yaml"
    params:
        n_bootstrap=lambda wc: DATASETS[next(iter(DATASETS))].evaluation["n_bootstrap"],
        random_state=lambda wc: DATASETS[next(iter(DATASETS))].evaluation[
            "random_state"
        ],
    script:
        "../scripts/compare_cross_corpus.py"


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
        prefer_domain_norm=lambda wc: DATASETS[wc.dataset].evaluation[
            "prefer_domain_norm"
        ],
    script:
        "../scripts/submissions.py"
