import os
import sys

from snakemake.utils import min_version, validate

# The serflow package ships in src/: importable here and, through PYTHONPATH,
# in every job (also inside conda environments, which hold only dependencies).
SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)
os.environ.update(
    PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
)

from serflow.features import FEATURE_SETS, FeatureParams
from serflow.manifest import ManifestError, read_entries, source_files

min_version("9.0")


validate(config, schema="../schemas/config.schema.yaml")

try:
    FEATURES = FeatureParams.from_config(config["features"])
except ValueError as err:
    raise ValueError(f"config key 'features': {err}") from None

DATASETS = {d["name"]: d for d in config["datasets"]}
if len(DATASETS) != len(config["datasets"]):
    raise ValueError("config key 'datasets': names must be unique")

FEATURE_GROUPS = {**FEATURE_SETS, **config["feature_sets"]}
for name in config["feature_tables"]:
    if name not in FEATURE_GROUPS:
        raise ValueError(
            f"config key 'feature_tables': {name!r} is neither built in "
            f"({', '.join(FEATURE_SETS)}) nor defined in 'feature_sets'"
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
    shard=r"\d{3}",


def dataset_config(wildcards):
    return DATASETS[wildcards.dataset]


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
    return tables + source_files(ENTRIES[wildcards.dataset])


def shard_features(wildcards):
    return expand(
        "results/{dataset}/features/shards/{shard}.parquet",
        dataset=wildcards.dataset,
        shard=SHARDS,
    )


def all_outputs():
    return expand(
        "results/{dataset}/features/{feature_set}.parquet",
        dataset=DATASETS,
        feature_set=config["feature_tables"],
    ) + expand("results/{dataset}/rejected.csv", dataset=DATASETS)
