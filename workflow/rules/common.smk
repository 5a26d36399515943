import math
import os
import sys

from snakemake.utils import min_version, validate

# The serflow package ships in src/: importable here and, through PYTHONPATH,
# in every job (also inside conda environments, which hold only dependencies).
# current_basedir (this file's folder), not basedir: used as a module, basedir is the
# folder of the Snakefile that loads this workflow.
SRC = os.path.normpath(os.path.join(str(workflow.current_basedir), "..", "..", "src"))
sys.path.insert(0, SRC)
os.environ.update(
    PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
)

import yaml

from serflow.checks import (
    check_datasets,
    coerce_text_values,
    schema_error,
    unknown_keys,
)
from serflow.features import FeatureSpec
from serflow.plan import (
    PlanError,
    build_plan,
    extract_disk_mb,
    extract_runtime,
    manifest_runtime,
    read_all_entries,
    table_mem_mb,
)
from serflow.outputs.submission import sample_submission_path

min_version("9.0")

SCHEMA = os.path.join(
    str(workflow.current_basedir), "..", "schemas", "config.schema.yaml"
)
with open(SCHEMA, encoding="utf-8") as _f:
    _schema = yaml.safe_load(_f)
coerce_text_values(config, _schema)  # nested --config and profile values arrive as text


def stop(message):
    """A config error as its own lines, without a traceback into this file."""
    print(f"serflow: error: {message}", file=sys.stderr)
    sys.exit(1)


# One line per problem, before the schema's own message (the whole schema and config).
_problems = unknown_keys(config, _schema) or [schema_error(config, _schema)]
if any(_problems):
    stop("\n".join(_problems))
validate(config, schema="../schemas/config.schema.yaml")

# Every check of the config against itself, and the corpus tables, before any job.
# A config's own models add to the default ones (runs can name both).
try:
    PLAN = build_plan(config, _schema["properties"]["models"]["default"])
    read_all_entries(PLAN)
    _warnings = check_datasets(PLAN)
except PlanError as _err:
    stop(_err)
for _warning in _warnings:
    print(f"serflow: warning: {_warning}", file=sys.stderr)
DATASETS = PLAN.datasets
SHARDS = PLAN.shards
try:
    if workflow.cores > (os.cpu_count() or 1):
        print(
            f"serflow: note: --cores {workflow.cores}, but this machine has {os.cpu_count()} CPUs",
            file=sys.stderr,
        )
except Exception:  # a dry run without --cores
    pass


wildcard_constraints:
    dataset="|".join(DATASETS),
    extractor="[a-z0-9_]+",
    feature_set="(?!fusion-)[A-Za-z0-9_-]+",
    model="[A-Za-z0-9_]+",
    shard=r"\d{3}",
    block=r"\d{2}",
    augmentation="[A-Za-z0-9_]+",
    fusion="[A-Za-z0-9_]+",


def dataset_config(wildcards):
    return DATASETS[wildcards.dataset].config


def run_names(wildcards):
    return DATASETS[wildcards.dataset].run_names


def on_bad_file(wildcards):
    return DATASETS[wildcards.dataset].on_bad_file


def extractor(wildcards):
    return DATASETS[wildcards.dataset].features[wildcards.extractor]


def manifest_inputs(wildcards):
    ds = DATASETS[wildcards.dataset]
    if ds.generated:
        return [f"results/{ds.name}/corpus"]
    return ds.adapter.tables(ds.config)


def corpus_listing(wildcards):
    return DATASETS[wildcards.dataset].listing_digest


def model_config(wildcards):
    """A model's settings that shape its results (threads do not)."""
    return PLAN.models[wildcards.model].settings


def run_key(wildcards):
    return wildcards.dataset, wildcards.feature_set, wildcards.model


def train_threads(wildcards):
    return PLAN.train_threads(*run_key(wildcards))


def train_mem_mb(wildcards, input):
    return PLAN.train_mem_mb(*run_key(wildcards), input.size_mb)


def train_gpus(wildcards):
    return PLAN.train_gpus(wildcards.model)


def extract_gpus(wildcards):
    return PLAN.extract_gpus(wildcards.dataset, wildcards.extractor)


def train_runtime(wildcards):
    return PLAN.train_runtime(*run_key(wildcards))


def fold_blocks(wildcards):
    """A run's fold jobs (training.fold_jobs > 1), gathered by its train job."""
    n = PLAN.fold_jobs
    if n <= 1:
        return []
    return expand(
        "results/{dataset}/runs/{feature_set}-{model}/folds/{block}.joblib",
        **wildcards,
        block=[f"{b:02d}" for b in range(n)],
    )


def cross_corpus_files(wildcards, name):
    """A file of each dataset a cross-corpus run spans: its table, its augmented copies'
    table (none without augment) or the run's ``name``."""
    run = f"{wildcards.feature_set}-{wildcards.model}"
    if name == "table":
        return [
            f"results/{d}/features/{wildcards.feature_set}.parquet"
            for d in PLAN.cross_corpus[run]
        ]
    if name == "augmented":
        augmentation = PLAN.augmentation(wildcards.model)
        if augmentation is None:
            return []
        return [
            f"results/{d}/augmented/{augmentation.name}/tables/{wildcards.feature_set}.parquet"
            for d in PLAN.cross_corpus[run]
        ]
    return [f"results/{d}/runs/{run}/{name}" for d in PLAN.cross_corpus[run]]


def fusion_files(wildcards, name):
    """A file of each run a fusion combines."""
    return expand(
        "results/{dataset}/runs/{run}/{name}",
        dataset=wildcards.dataset,
        run=PLAN.fusions[wildcards.fusion]["runs"],
        name=name,
    )


def augmentation_spec(wildcards):
    return PLAN.augmentations[wildcards.augmentation].describe()


def augmented_shards(wildcards):
    """Shards of a table's extractors for an augmentation's copies."""
    ds = DATASETS[wildcards.dataset]
    return expand(
        "results/{dataset}/augmented/{augmentation}/features/{extractor}/{shard}.parquet",
        dataset=ds.name,
        augmentation=wildcards.augmentation,
        extractor=ds.table_extractors(wildcards.feature_set),
        shard=SHARDS,
    )


def augmented_table(wildcards):
    """The table of a run's augmented copies (nothing for a model without augment)."""
    augmentation = PLAN.augmentation(wildcards.model)
    if augmentation is None:
        return []
    return f"results/{wildcards.dataset}/augmented/{augmentation.name}/tables/{wildcards.feature_set}.parquet"


def evaluation_config(wildcards):
    return DATASETS[wildcards.dataset].fit_evaluation


def run_files(wildcards, name):
    return expand(
        "results/{dataset}/runs/{run}/{name}",
        dataset=wildcards.dataset,
        run=DATASETS[wildcards.dataset].run_names,
        name=name,
    )


def sample_submission(wildcards):
    path = sample_submission_path(DATASETS[wildcards.dataset].config)
    return str(path) if path else None


def submission_inputs(wildcards):
    ds = DATASETS[wildcards.dataset]
    if ds.generated:  # the sample file lies in the generated corpus folder
        sample = [f"results/{ds.name}/corpus"]
    else:
        sample = [p for p in [sample_submission(wildcards)] if p]
    return {
        "manifest": f"results/{ds.name}/manifest.parquet",
        "metrics": run_files(wildcards, "metrics.json"),
        "test": run_files(wildcards, "test_predictions.parquet"),
        "comparison": f"results/{ds.name}/comparison.json",
        "sample": sample,
        # whether the test split keeps to voice groups of its own (choose_best reads it)
        "speakers": (
            [f"results/{ds.name}/speakers.json"] if ds.speakers == "cluster" else []
        ),
    }


def compare_inputs(wildcards):
    ds = DATASETS[wildcards.dataset]
    return {
        "metrics": run_files(wildcards, "metrics.json"),
        "predictions": run_files(wildcards, "predictions.parquet"),
        "speakers": (
            [f"results/{ds.name}/speakers.json"] if ds.speakers == "cluster" else []
        ),
    }


def extractor_shards(dataset, names=None):
    """Shard outputs of a dataset's extractors (all, or ``names``), extractor by extractor."""
    ds = DATASETS[dataset]
    return expand(
        "results/{dataset}/features/{extractor}/{shard}.parquet",
        dataset=dataset,
        extractor=ds.features.names if names is None else names,
        shard=SHARDS,
    )


def table_shards(wildcards):
    ds = DATASETS[wildcards.dataset]
    return extractor_shards(ds.name, ds.table_extractors(wildcards.feature_set))


def speaker_groups(wildcards):
    """A ``speakers: cluster`` dataset's estimated speakers (nothing for the others)."""
    if DATASETS[wildcards.dataset].speakers == "cluster":
        return f"results/{wildcards.dataset}/speakers.parquet"
    return []


def voice_shards(wildcards):
    """Shards of the voice features a ``speakers: cluster`` dataset groups."""
    return extractor_shards(
        wildcards.dataset, [DATASETS[wildcards.dataset].speaker_voice]
    )


def all_shards(wildcards):
    return extractor_shards(wildcards.dataset)


def table_params(wildcards):
    """What the table job needs: the groups, and each extractor's description."""
    ds = DATASETS[wildcards.dataset]
    return {
        "speakers": ds.speakers,
        "groups": list(ds.tables[wildcards.feature_set]),
        "extractors": {
            name: ds.features[name].describe()
            for name in ds.table_extractors(wildcards.feature_set)
        },
    }


def report_files(name):
    """A dataset's outputs the report reads, by what they are."""
    ds = DATASETS[name]
    runs = expand("results/{dataset}/runs/{run}", dataset=name, run=ds.run_names)
    files = {
        "manifest": f"results/{name}/manifest.parquet",
        "rejected": f"results/{name}/rejected.csv",
        "metrics": [f"{r}/metrics.json" for r in runs],
        "comparison": f"results/{name}/comparison.json",
        "importance": [f"{r}/importance.csv" for r in runs],
        "shards": extractor_shards(name),
    }
    if ds.has_test_clips and ds.runs:
        files["submissions"] = f"results/{name}/submissions.json"
    if ds.speakers == "cluster":
        files["speakers"] = f"results/{name}/speakers.json"
    return files


def report_inputs(wildcards):
    """Every file of ``report_files`` (the script reads them through ``report_datasets``)."""
    return {
        **{
            f"{name}_{key}": files
            for name in DATASETS
            for key, files in report_files(name).items()
        },
        "cross_corpus": cross_corpus_outputs(),
        "cross_corpus_comparison": cross_corpus_comparison(),
    }


def report_datasets():
    """What the report job reads of each dataset: its files and settings."""
    return {
        name: {
            "paths": {
                **report_files(name),
                "tables": [f"results/{name}/features/{fs}.parquet" for fs in ds.tables],
                "models": [
                    f"results/{name}/runs/{r}/model.joblib" for r in ds.run_names
                ],
                "benchmarks": f"benchmarks/{name}",
            },
            "metric": ds.evaluation["metric"],
            "label_map": ds.config.get("label_map") or {},
            "runs": ds.run_names,
            "sample_rate": ds.features.sample_rate,
            "extractors": {e.name: e.params() for e in ds.features.extractors},
            "warnings": ds.warnings,
        }
        for name, ds in DATASETS.items()
    }


def common_extractors():
    """Parameters of the top-level ``features`` (for the report's provenance table)."""
    try:
        spec = FeatureSpec.from_config(config["features"])
    except ValueError:  # valid only with some dataset's own overrides
        spec = next(iter(DATASETS.values())).features
    return {e.name: e.params() for e in spec.extractors}


def n_listed(wildcards):
    return len(DATASETS[wildcards.dataset].entries)


def shard_size(input):
    with open(input[0]) as f:
        return max(0, sum(1 for _ in f) - 1)


def all_outputs():
    tables = [
        f"results/{name}/features/{fs}.parquet"
        for name, ds in DATASETS.items()
        for fs in ds.tables
    ]
    return (
        tables
        + expand("results/{dataset}/rejected.csv", dataset=DATASETS)
        + cross_corpus_outputs()
        + cross_corpus_comparison()
        + [config["report"]]
    )


def cross_corpus_outputs(ext="json"):
    return [f"results/cross_corpus/{run}.{ext}" for run in PLAN.cross_corpus]


def cross_corpus_comparison():
    """The paired comparison of cross-corpus runs, where two or more share cells."""
    if len(PLAN.cross_corpus) < 2:
        return []
    return ["results/cross_corpus/comparison.json"]
