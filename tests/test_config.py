"""The shipped configs validate against the schema; bad ones are refused with the key named."""

import copy
import re

import pytest
import yaml
from conftest import REPO
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
CONFIGS = sorted((REPO / "config").rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    config = yaml.safe_load(path.read_text())
    validate(config, SCHEMA)
    assert config["extraction"]["on_bad_file"] == "reject"  # defaults were filled in
    assert config["cache_dir"] == "results/cache"


def test_examples_cover_every_adapter():
    adapters = {d["adapter"] for p in CONFIGS for d in yaml.safe_load(p.read_text())["datasets"]}
    assert adapters == {"demo", "emodb", "csv", "competition", "folders"}


@pytest.mark.parametrize(
    "change, named",
    [
        (lambda c: c.update(cache_dri="x"), "cache_dri"),
        (lambda c: c["datasets"][0].update(adapter="kaggle"), "kaggle"),
        (lambda c: c["datasets"][0].update(nme="x"), "nme"),
        (lambda c: c.update(features={"hop_length": 0}), "hop_length"),
        (lambda c: c.update(features={"functionals": ["mean", "median"]}), "median"),
        (lambda c: c.update(extraction={"shards": 0}), "shards"),
        (lambda c: c.update(datasets=[{"name": "e", "adapter": "emodb"}]), "root"),
    ],
)
def test_bad_values_name_the_key(change, named):
    config = copy.deepcopy(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    change(config)
    with pytest.raises(WorkflowError, match=named):
        validate(config, SCHEMA)


@pytest.mark.emodb
@pytest.mark.parametrize(
    "path",
    [p for p in sorted((REPO / "config" / "recipes").glob("*.yaml")) if p.stem != "seed002"],
    ids=lambda p: p.stem,
)
def test_recipes_plan_their_runs(path, emodb):
    """Each EmoDB recipe builds its DAG (seed 002 has no data here: test_seed002.py runs it)."""
    import subprocess

    from conftest import SNAKEMAKE

    config = yaml.safe_load(path.read_text())
    cmd = [
        SNAKEMAKE,
        "-n",
        "--forceall",  # plan every job, whatever a local results/ already holds
        "--nolock",
        "--cores",
        "2",
        "--workflow-profile",
        "none",
        "--configfile",
        str(path),
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    n_runs = sum(
        len(b["feature_sets"]) * len(b["models"])
        for ds in config["datasets"]
        for b in ds.get("runs", config.get("runs"))
    )
    planned = re.search(r"^train\s+(\d+)$", proc.stdout, re.M)
    assert planned and int(planned[1]) == n_runs
