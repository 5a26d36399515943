import functools
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

from serflow.checks import check_datasets, coerce_text_values, unknown_keys
from serflow.evaluation import SCORING_KEYS
from serflow.features import FeatureSpec
from serflow.manifest import listing_digest
from serflow.plan import PlanError, build_plan, read_all_entries, run_cost
from serflow.submission import sample_submission_path

min_version("9.0")

SCHEMA = os.path.join(
    str(workflow.current_basedir), "..", "schemas", "config.schema.yaml"
)
with open(SCHEMA, encoding="utf-8") as _f:
    _schema = yaml.safe_load(_f)
coerce_text_values(config, _schema)  # nested --config and profile values arrive as text
_unknown = unknown_keys(config, _schema)
if _unknown:  # one line each, before the schema's own message (the whole schema)
    raise PlanError("\n".join(_unknown))
validate(config, schema="../schemas/config.schema.yaml")

# Every check of the config against itself, and the corpus tables, before any job.
# A config's own models add to the default ones (runs can name both).
PLAN = build_plan(config, _schema["properties"]["models"]["default"])
read_all_entries(PLAN)
for _warning in check_datasets(PLAN):
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
    feature_set="[A-Za-z0-9_-]+",
    model="[A-Za-z0-9_]+",
    shard=r"\d{3}",
    block=r"\d{2}",


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
    """The audio files' state as one digest: a changed, added or removed clip reruns the
    manifest through this parameter, without Snakemake tracking every file as an input.
    """
    return _listing(wildcards.dataset)


@functools.cache
def _listing(name):
    ds = DATASETS[name]
    return "generated" if ds.generated else listing_digest(ds.entries)


def has_test_clips(name):
    """Whether a dataset lists unlabelled test clips (so it gets submissions)."""
    return any(
        e.split == "test" and e.label is None and e.error is None
        for e in DATASETS[name].entries
    )


def model_config(wildcards):
    """A model's settings that shape its results (threads do not)."""
    m = PLAN.models[wildcards.model]
    keys = ("kind", "params", "grid", "class_weight", "speaker_norm")
    cfg = {k: m.get(k) for k in keys}
    for key, unset in (
        ("feature_groups", None),
        ("scale", True),
        ("domain_norm", False),
    ):
        if m.get(key, unset) != unset:  # only when set: other models keep their params
            cfg[key] = m[key]
    return cfg


def model_threads(wildcards):
    return PLAN.models[wildcards.model].get("threads", 1)


def train_cost(wildcards):
    return _train_cost(wildcards.dataset, wildcards.feature_set, wildcards.model)


@functools.cache
def _train_cost(dataset, feature_set, model):
    return run_cost(DATASETS[dataset], feature_set, PLAN.models[model])


def fold_workers(wildcards):
    """Processes for a run's outer folds: one for runs of a few seconds (start-up would dominate)."""
    cost = train_cost(wildcards)
    blocks = max(1, config["training"]["fold_jobs"])
    if cost.folds < 2 or cost.seconds < config["training"]["parallel_min_seconds"]:
        return 1
    return min(config["training"]["fold_workers"], math.ceil(cost.folds / blocks))


def train_threads(wildcards):
    return model_threads(wildcards) * fold_workers(wildcards)


def fold_blocks(wildcards):
    """A run's fold jobs (training.fold_jobs > 1), gathered by its train job."""
    n = config["training"]["fold_jobs"]
    if n <= 1:
        return []
    return expand(
        "results/{dataset}/runs/{feature_set}-{model}/folds/{block}.joblib",
        **wildcards,
        block=[f"{b:02d}" for b in range(n)],
    )


def evaluation_config(wildcards):
    """The evaluation settings a run's fits depend on (not those of scoring)."""
    ev = DATASETS[wildcards.dataset].evaluation
    return {k: v for k, v in ev.items() if k not in SCORING_KEYS}


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
        "sample": sample,
        # whether the test split keeps to voice groups of its own (choose_best reads it)
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


def voiceprint_shards(wildcards):
    return extractor_shards(wildcards.dataset, ["voiceprint"])


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


def report_inputs(wildcards):
    inputs = {}
    for name, ds in DATASETS.items():
        runs = expand("results/{dataset}/runs/{run}", dataset=name, run=ds.run_names)
        inputs[f"{name}_manifest"] = f"results/{name}/manifest.parquet"
        inputs[f"{name}_rejected"] = f"results/{name}/rejected.csv"
        inputs[f"{name}_metrics"] = [f"{r}/metrics.json" for r in runs]
        inputs[f"{name}_importance"] = [f"{r}/importance.csv" for r in runs]
        inputs[f"{name}_shards"] = extractor_shards(name)
        if has_test_clips(name) and ds.runs:
            inputs[f"{name}_submissions"] = f"results/{name}/submissions.json"
        if ds.speakers == "cluster":
            inputs[f"{name}_speakers"] = f"results/{name}/speakers.json"
    return inputs


def report_datasets():
    """What the report job needs to know of each dataset besides its input files."""
    return {
        name: {
            "metric": ds.evaluation["metric"],
            "label_map": ds.config.get("label_map") or {},
            "runs": ds.run_names,
            "sample_rate": ds.features.sample_rate,
            "extractors": {e.name: e.params() for e in ds.features.extractors},
            "tables": [f"results/{name}/features/{fs}.parquet" for fs in ds.tables],
            "models": [
                f"results/{name}/runs/{run}/model.joblib" for run in ds.run_names
            ],
            "benchmarks": f"benchmarks/{name}",
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


# Resources, sized from EmoDB measurements (peak RSS: manifest 128 MB, extraction
# 323 MB, feature table 147 MB, training 314 MB; about 0.05 s per clip to extract,
# at most 46 s to evaluate a model on 535 clips x 776 features) with wide margins.
# Runtimes are minutes. A profile's set-resources overrides any of them.


def n_listed(wildcards):
    return len(DATASETS[wildcards.dataset].entries)


def shard_size(input):
    with open(input[0]) as f:
        return max(0, sum(1 for _ in f) - 1)


def manifest_runtime(wildcards):
    return 10 + math.ceil(
        n_listed(wildcards) * 0.05 / 60
    )  # every file probed, one thread


def extract_runtime(wildcards, input):
    per_clip = extractor(wildcards).seconds_per_clip
    return 10 + math.ceil(shard_size(input) * per_clip / 60)


def extract_mem_mb(wildcards):
    return extractor(wildcards).mem_mb


def extract_disk_mb(wildcards, input):
    return 100 + math.ceil(shard_size(input) * 0.05)  # cache files of about 3 KB each


def table_mem_mb(wildcards, input):
    return 1000 + math.ceil(4 * input.size_mb)


def train_mem_mb(wildcards, input):
    """The table as read (20 x its Parquet size), plus four float64 copies of the run's
    matrix (scaled, projected, fold subsets) in each fold process."""
    cost = train_cost(wildcards)
    matrix_mb = cost.clips * cost.columns * 8 / 2**20
    return 1000 + math.ceil(
        20 * input.size_mb + 4 * matrix_mb * fold_workers(wildcards)
    )


def train_runtime(wildcards, input):
    """Minutes: the run's estimated cost (five times the measured rate), over its processes."""
    cost = train_cost(wildcards).seconds * 5 / max(1, config["training"]["fold_jobs"])
    return 15 + math.ceil(cost / 60 / fold_workers(wildcards))


def all_outputs():
    tables = [
        f"results/{name}/features/{fs}.parquet"
        for name, ds in DATASETS.items()
        for fs in ds.tables
    ]
    return (
        tables
        + expand("results/{dataset}/rejected.csv", dataset=DATASETS)
        + [config["report"]]
    )
