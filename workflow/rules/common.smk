import math
import os
import re
import sys

from snakemake.utils import min_version, validate

# The serflow package ships in src/: importable here and, through PYTHONPATH,
# in every job (also inside conda environments, which hold only dependencies).
SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)
os.environ.update(
    PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
)

from serflow.features import (
    EXTENDED_GROUPS,
    FEATURE_SETS,
    OPENSMILE_SETS,
    FeatureParams,
)
from serflow.manifest import (
    DEMO_N_TEST,
    DEMO_N_TRAIN,
    ManifestError,
    read_entries,
    source_files,
)
from serflow.submission import sample_submission_path
from serflow.evaluation import EVALUATION_DEFAULTS

min_version("9.0")


validate(config, schema="../schemas/config.schema.yaml")


def _feature_params(overrides, where):
    try:
        return FeatureParams.from_config({**config["features"], **overrides})
    except ValueError as err:
        raise ValueError(f"config key {where!r}: {err}") from None


FEATURES = _feature_params({}, "features")

DATASETS = {d["name"]: d for d in config["datasets"]}
if len(DATASETS) != len(config["datasets"]):
    raise ValueError("config key 'datasets': names must be unique")

DATASET_EVALUATION = {
    name: {**EVALUATION_DEFAULTS, **config["evaluation"], **ds.get("evaluation", {})}
    for name, ds in DATASETS.items()
}
# A dataset may override the extractor parameters (merged over 'features'), the
# feature tables and the runs: one config can then hold several recipes side by side.
DATASET_FEATURES = {
    name: _feature_params(ds.get("features", {}), f"datasets: {name}: features")
    for name, ds in DATASETS.items()
}

FEATURE_GROUPS = {**FEATURE_SETS, **config["feature_sets"]}
MODELS = config["models"]


def _run_pairs(blocks, where):
    """(feature set, model) pairs of 'runs' blocks, in config order."""
    pairs = []
    for block in blocks:
        for fs in block["feature_sets"]:
            if fs not in FEATURE_GROUPS:
                raise ValueError(
                    f"config key {where!r}: feature set {fs!r} is not defined"
                )
            for model in block["models"]:
                if model not in MODELS:
                    raise ValueError(
                        f"config key {where!r}: model {model!r} is not defined in 'models'"
                    )
                if (fs, model) not in pairs:
                    pairs.append((fs, model))
    return pairs


# Without 'runs': every model on these feature sets.
_default_runs = config.get("runs") or [
    {"feature_sets": ["prosody", "mfcc_deltas", "all"], "models": list(MODELS)}
]
_GROUP_NEEDS = {
    **{g: "features: {extended: true}" for g in EXTENDED_GROUPS},
    **{g: f"features: {{opensmile: [{s}]}}" for s, g in OPENSMILE_SETS.items()},
}
DATASET_RUNS = {}  # dataset -> run names "{feature set}-{model}"
DATASET_TABLES = {}  # dataset -> feature sets to build a table for
for _name, _ds in DATASETS.items():
    _where = f"datasets: {_name}: " if "runs" in _ds else ""
    _pairs = _run_pairs(_ds.get("runs") or _default_runs, f"{_where}runs")
    DATASET_RUNS[_name] = [f"{fs}-{model}" for fs, model in _pairs]
    _tables = _ds.get("feature_tables", config["feature_tables"])
    for _fs in _tables:
        if _fs not in FEATURE_GROUPS:
            raise ValueError(
                f"config key 'feature_tables': {_fs!r} is neither built in "
                f"({', '.join(FEATURE_SETS)}) nor defined in 'feature_sets'"
            )
    DATASET_TABLES[_name] = list(dict.fromkeys([*_tables, *(fs for fs, _ in _pairs)]))
    for _fs in DATASET_TABLES[_name]:
        for _group in FEATURE_GROUPS[_fs]:
            if _group != "all" and _group not in DATASET_FEATURES[_name].groups:
                raise ValueError(
                    f"dataset {_name!r}: feature set {_fs!r} needs the group {_group!r}: "
                    f"set {_GROUP_NEEDS[_group]}"
                )
    for _fs, _model in _pairs:
        _groups = FEATURE_GROUPS[_fs]
        _available = DATASET_FEATURES[_name].groups if "all" in _groups else _groups
        for _choice in MODELS[_model].get("feature_groups") or []:
            _missing = [g for g in _choice if g != "all" and g not in _available]
            if _missing:
                raise ValueError(
                    f"dataset {_name!r}, run '{_fs}-{_model}': feature_groups {_choice} "
                    f"name {_missing}, which the table {_fs!r} does not hold"
                )

_shards = config["extraction"]["shards"]
N_SHARDS = (os.cpu_count() or 1) if _shards == "auto" else int(_shards)
SHARDS = [f"{k:03d}" for k in range(N_SHARDS)]

# Table and layout errors stop the run here, before any job.
ENTRIES = {}
for _name, _ds in DATASETS.items():
    if _ds["adapter"] != "demo":
        try:
            ENTRIES[_name] = read_entries(_ds)
        except ManifestError as err:
            raise ValueError(f"dataset {_name!r}: {err}") from None


wildcard_constraints:
    dataset="|".join(DATASETS),
    feature_set="[A-Za-z0-9_-]+",
    model="[A-Za-z0-9_]+",
    shard=r"\d{3}",


def dataset_config(wildcards):
    return DATASETS[wildcards.dataset]


def run_names(wildcards):
    return DATASET_RUNS[wildcards.dataset]


def on_bad_file(wildcards):
    ds = DATASETS[wildcards.dataset]
    return ds.get("on_bad_file", config["extraction"]["on_bad_file"])


def manifest_inputs(wildcards):
    ds = DATASETS[wildcards.dataset]
    if ds["adapter"] == "demo":
        return [f"results/{wildcards.dataset}/corpus"]
    tables = []
    if ds["adapter"] == "csv":
        tables.append(ds["table"])
    elif ds["adapter"] == "competition":
        for key, default in (("train_csv", "train.csv"), ("test_csv", "test.csv")):
            path = os.path.join(ds["root"], ds.get(key, default))
            if os.path.exists(path):
                tables.append(path)
    return tables + [
        p for p in source_files(ENTRIES[wildcards.dataset]) if trackable(p)
    ]


def trackable(path):
    """Whether Snakemake can take ``path`` as an input file.

    Braces read as wildcards and <name> as a path variable, so such files are read
    by the manifest job but not tracked: changing only them does not rerun it.
    """
    return not (set("{}") & set(path) or re.search(r"<[a-z][a-z0-9_]*>", path))


def has_test_clips(name):
    """Whether a dataset lists unlabelled test clips (so it gets submissions)."""
    ds = DATASETS[name]
    if ds["adapter"] == "demo":
        return ds.get("n_test", DEMO_N_TEST) > 0
    return any(
        e.split == "test" and e.label is None and e.error is None for e in ENTRIES[name]
    )


def model_config(wildcards):
    """A model's settings that shape its results (threads do not)."""
    m = MODELS[wildcards.model]
    keys = ("kind", "params", "grid", "class_weight", "speaker_norm")
    cfg = {k: m.get(k) for k in keys}
    if m.get("feature_groups"):  # only when set: other models keep their params
        cfg["feature_groups"] = m["feature_groups"]
    return cfg


def model_threads(wildcards):
    return MODELS[wildcards.model].get("threads", 1)


def evaluation_config(wildcards):
    return DATASET_EVALUATION[wildcards.dataset]


def run_files(wildcards, name):
    return expand(
        "results/{dataset}/runs/{run}/{name}",
        dataset=wildcards.dataset,
        run=DATASET_RUNS[wildcards.dataset],
        name=name,
    )


def sample_submission(wildcards):
    path = sample_submission_path(DATASETS[wildcards.dataset])
    return str(path) if path else None


def submission_inputs(wildcards):
    ds = DATASETS[wildcards.dataset]
    if ds["adapter"] == "demo":  # the sample file lies in the generated corpus folder
        sample = [f"results/{wildcards.dataset}/corpus"]
    else:
        sample = [p for p in [sample_submission(wildcards)] if p]
    return {
        "manifest": f"results/{wildcards.dataset}/manifest.parquet",
        "metrics": run_files(wildcards, "metrics.json"),
        "test": run_files(wildcards, "test_predictions.parquet"),
        "sample": sample,
    }


def report_inputs(wildcards):
    inputs = {}
    for name in DATASETS:
        runs = expand(
            "results/{dataset}/runs/{run}", dataset=name, run=DATASET_RUNS[name]
        )
        inputs[f"{name}_manifest"] = f"results/{name}/manifest.parquet"
        inputs[f"{name}_rejected"] = f"results/{name}/rejected.csv"
        inputs[f"{name}_metrics"] = [f"{r}/metrics.json" for r in runs]
        inputs[f"{name}_importance"] = [f"{r}/importance.csv" for r in runs]
        inputs[f"{name}_shards"] = expand(
            "results/{dataset}/features/shards/{shard}.parquet",
            dataset=name,
            shard=SHARDS,
        )
        if has_test_clips(name) and DATASET_RUNS[name]:
            inputs[f"{name}_submissions"] = f"results/{name}/submissions.json"
    return inputs


def report_datasets():
    """What the report job needs to know of each dataset besides its input files."""
    return {
        name: {
            "metric": DATASET_EVALUATION[name]["metric"],
            "label_map": ds.get("label_map") or {},
            "runs": DATASET_RUNS[name],
            "extractor": DATASET_FEATURES[name].to_dict(),
            "tables": [
                f"results/{name}/features/{fs}.parquet" for fs in DATASET_TABLES[name]
            ],
            "models": [
                f"results/{name}/runs/{run}/model.joblib" for run in DATASET_RUNS[name]
            ],
            "benchmarks": f"benchmarks/{name}",
        }
        for name, ds in DATASETS.items()
    }


# Resources, sized from EmoDB measurements (peak RSS: manifest 128 MB, extraction
# 323 MB, feature table 147 MB, training 314 MB; about 0.05 s per clip to extract,
# at most 46 s to evaluate a model on 535 clips x 776 features) with wide margins.
# Runtimes are minutes. A profile's set-resources overrides any of them.


def n_listed(wildcards):
    ds = DATASETS[wildcards.dataset]
    if ds["adapter"] == "demo":
        return ds.get("n_train", DEMO_N_TRAIN) + ds.get("n_test", DEMO_N_TEST)
    return len(ENTRIES[wildcards.dataset])


def shard_size(input):
    with open(input[0]) as f:
        return max(0, sum(1 for _ in f) - 1)


def manifest_runtime(wildcards):
    return 10 + math.ceil(n_listed(wildcards) * 0.05 / 60)


def extract_runtime(wildcards, input):
    return 10 + math.ceil(shard_size(input) * 0.5 / 60)


def extract_disk_mb(wildcards, input):
    return 100 + math.ceil(shard_size(input) * 0.05)  # cache files of about 3 KB each


def table_mem_mb(wildcards, input):
    return 1000 + math.ceil(4 * input.size_mb)


def train_mem_mb(wildcards, input):
    return 1000 + math.ceil(20 * input.size_mb)


def train_runtime(wildcards, input):
    return 15 + math.ceil(5 * input.size_mb)


def shard_features(wildcards):
    return expand(
        "results/{dataset}/features/shards/{shard}.parquet",
        dataset=wildcards.dataset,
        shard=SHARDS,
    )


def all_outputs():
    tables = [
        f"results/{name}/features/{fs}.parquet"
        for name in DATASETS
        for fs in DATASET_TABLES[name]
    ]
    return (
        tables
        + expand("results/{dataset}/rejected.csv", dataset=DATASETS)
        + ["results/report.html"]
    )
