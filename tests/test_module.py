"""The workflow as a Snakemake module, deployed the way `snakedeploy deploy-workflow` sets it up.

A deployment is another folder holding only workflow/Snakefile (a ``module`` statement pointing
at this repository's Snakefile, then ``use rule * from``) and config/config.yaml; Snakemake runs
there, so every path of the workflow's own files must resolve from the module, not from the
deployment or the working directory.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import yaml
from conftest import REPO, SNAKEMAKE, SNAKEMAKE_ENV, job_counts

# Runs Snakemake with an installed serflow (pip install -e .) hidden from its process, as in a
# deployment that installed only the dependencies: the module must put its own src/ on the path.
HIDE_INSTALLED_SERFLOW = """
import importlib.util, os, runpy, sys
sys.path[:] = [p for p in sys.path if not os.path.isfile(os.path.join(p or ".", "serflow", "__init__.py"))]
sys.meta_path[:] = [f for f in sys.meta_path if "serflow" not in getattr(f, "__module__", "")]
assert importlib.util.find_spec("serflow") is None, "an installed serflow is still importable"
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

N_TRAIN, N_TEST = 40, 8
# Short jobs the workflow runs on the submit host (localrules), whatever the module is named.
LOCAL = {"all", "rejected", "submissions", "report"}


def deploy(root, use="use rule * from serflow"):
    """A deployment in ``root``: workflow/Snakefile using this repository as a module, and the
    repository's demo config made small."""
    snakefile = root / "workflow" / "Snakefile"
    snakefile.parent.mkdir(parents=True)
    snakefile.write_text(
        'configfile: "config/config.yaml"\n\n\n'
        "module serflow:\n"
        f"    snakefile:\n        {str(REPO / 'Snakefile')!r}\n"
        "    config:\n        config\n\n\n"
        f"{use}\n"
    )
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["datasets"] = [
        {"name": "demo", "adapter": "demo", "n_train": N_TRAIN, "n_test": N_TEST, "seed": 0}
    ]
    config["feature_tables"] = ["prosody"]
    config["runs"] = [{"feature_sets": ["prosody"], "models": ["majority"]}]
    config["extraction"] = {**config["extraction"], "shards": 2}
    config["evaluation"] = {**config["evaluation"], "n_bootstrap": 100}
    (root / "config").mkdir()
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def snakemake(root, *args):
    """``snakemake --cores 2 ARGS`` in the deployment, as its user types it (no -s, no -d)."""
    proc = subprocess.run(
        [sys.executable, "-c", HIDE_INSTALLED_SERFLOW, SNAKEMAKE, "--cores", "2", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env=SNAKEMAKE_ENV,
    )
    assert proc.returncode == 0, (
        f"snakemake failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-6000:]}"
    )
    return proc


def test_deployed_module_runs_the_demo(tmp_path):
    root = deploy(tmp_path)
    proc = snakemake(root)
    counts = job_counts(proc)
    # rule all is the default target through the module; one run, two extraction shards
    assert counts["all"] == counts["train"] == counts["report"] == 1 and counts["extract_features"] == 2

    results = root / "results"
    report = (results / "report.html").read_text()
    assert "<title>serflow report</title>" in report and "prosody-majority" in report
    # The deployment's config, not the module's own config/config.yaml (read by its configfile:).
    manifest = pd.read_parquet(results / "demo/manifest.parquet")
    assert len(manifest) == N_TRAIN + N_TEST
    table = pd.read_parquet(results / "demo/features/prosody.parquet")
    assert len(table) == len(manifest) and sorted(table["id"]) == sorted(manifest["id"])
    metrics = json.loads((results / "demo/runs/prosody-majority/metrics.json").read_text())
    assert metrics["run"] == "prosody-majority" and metrics["n_clips"] == N_TRAIN
    assert (root / "logs/report.log").is_file()

    again = snakemake(root, "-n")
    assert job_counts(again) == {}
    assert "Nothing to be done" in again.stdout + again.stderr


def test_renamed_rules_stay_local(tmp_path):
    """``use rule * as serflow_*`` renames the rules; the short jobs must stay local rules."""
    root = deploy(tmp_path, "use rule * from serflow as serflow_*")
    proc = snakemake(root, "-n")
    out = proc.stdout + proc.stderr
    assert "localrules directive specifies rules that are not present" not in out
    counts = job_counts(proc)
    assert all(rule.startswith("serflow_") for rule in counts) and counts["serflow_train"] == 1
    assert {f"serflow_{rule}" for rule in LOCAL} <= set(counts)
