"""A newcomer's first hour: problems reported before any job, defaults merged, a closing summary."""

import json
import re
import subprocess

import pandas as pd
import pytest
import yaml
from conftest import REPO, SNAKEMAKE, SNAKEMAKE_ENV, run_snakemake, tone, write_wav

from serflow.checks import coerce_text_values, unknown_keys
from serflow.plan import build_plan

SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
DEFAULT_MODELS = SCHEMA["properties"]["models"]["default"]


def folders_corpus(root, n=6):
    for label, freq in (("calm", 150.0), ("loud", 260.0)):
        for i in range(n):
            write_wav(root / label / f"clip{i}.wav", tone(freq + 5 * i, seconds=0.6))
    return root


def dry_run(workdir, config, *args):
    """The dry run's process, with ``out``: what Snakemake printed (it prints errors on stdout)."""
    proc = run_snakemake(workdir, config, "-n", *args, check=False)
    proc.out = proc.stdout + proc.stderr
    return proc


def started_jobs(proc) -> bool:
    return "rule manifest:" in proc.stdout or "localrule corpus:" in proc.stdout


def test_speaker_pattern_matching_nothing(tmp_path):
    corpus = folders_corpus(tmp_path / "corpus")
    ds = {"name": "mine", "adapter": "folders", "root": str(corpus), "speaker_pattern": "^spk\\d+"}
    proc = dry_run(tmp_path, {"datasets": [ds], "evaluation": {"protocol": "loso"}})
    assert proc.returncode != 0 and not started_jobs(proc)
    assert "speaker_pattern '^spk\\\\d+' matched 0 of 12; protocol loso needs the speaker of every clip" in (
        proc.out
    )
    proc = dry_run(tmp_path, {"datasets": [ds]})  # protocol auto: goes on, loudly
    assert proc.returncode == 0
    assert "speaker_pattern '^spk\\\\d+' matched 0 of 12" in proc.out
    assert "protocol auto falls back to stratified_kfold: speaker-DEPENDENT" in proc.out


def test_listing_warnings_are_repeated_in_the_closing_summary(tmp_path):
    from serflow.outputs.summary import closing_summary

    text = closing_summary({"mine": ([], "uar", ["speaker_pattern '^spk' matched 0 of 12"])}, tmp_path)
    assert "  mine: warning: speaker_pattern '^spk' matched 0 of 12" in text


def test_competition_paths_missing_stop_before_any_job(tmp_path):
    root = tmp_path / "comp"
    for i in range(4):
        write_wav(root / "train_data" / f"t{i}.wav", tone(200.0 + 20 * i))
    pd.DataFrame({"file_name": [f"t{i}.wav" for i in range(4)], "emotion": ["a", "b"] * 2}).to_csv(
        root / "train.csv", index=False
    )
    pd.DataFrame({"file_name": ["x.wav"], "emotion": ["a"]}).to_csv(root / "sample_submit.csv", index=False)
    ds = {
        "name": "kaggle",
        "adapter": "competition",
        "root": str(root),
        "id_column": "file_name",
        "path_column": "file_name",
        "label_column": "emotion",
    }
    proc = dry_run(tmp_path, {"datasets": [ds]})
    assert proc.returncode != 0 and not started_jobs(proc)
    assert "4 of 4 train paths are missing" in proc.out and "check root and train_audio_dir" in proc.out
    proc = dry_run(tmp_path, {"datasets": [{**ds, "train_audio_dir": "train_data"}]})
    assert proc.returncode == 0, proc.out
    assert "sample_submit.csv looks like the sample submission but the config does not name it" in proc.out


def test_a_typo_gets_one_line_with_the_likely_key(tmp_path):
    config = {"datasets": [{"name": "d", "adapter": "demo"}], "evalution": {"protocol": "loso"}}
    proc = dry_run(tmp_path, config)
    assert proc.returncode != 0
    assert "config key 'evalution' (top level) is not a setting; did you mean 'evaluation'?" in proc.out
    assert len(proc.out.splitlines()) < 20  # not the schema and the whole config
    assert unknown_keys({"models": {"m": {"kind": "svc", "grids": {}}}}, SCHEMA) == [
        "config key 'grids' (models: m) is not a setting; did you mean 'grid'?"
    ]
    assert unknown_keys(
        {"datasets": [{"name": "k", "adapter": "competition", "train_audio": "x"}]}, SCHEMA
    ) == [
        "config key 'train_audio' (datasets: k, adapter competition) is not a setting;"
        " did you mean 'train_audio_dir'?"
    ]


def test_own_models_add_to_the_defaults():
    config = {
        "datasets": [{"name": "d", "adapter": "demo", "speakers": "given"}],
        "models": {"mine": {"kind": "logreg", "params": {"C": 1.0}}},
        "feature_tables": ["prosody"],
        "extraction": {"shards": 1, "on_bad_file": "reject"},
        "evaluation": {"protocol": "auto"},
    }
    plan = build_plan(config, DEFAULT_MODELS)
    assert set(plan.models) == {*DEFAULT_MODELS, "mine"}
    # Without runs, the runs are the config's own models (not the six defaults as well).
    assert {m for _, m in plan.datasets["d"].runs} == {"mine"}
    plan = build_plan(
        {**config, "runs": [{"feature_sets": ["prosody"], "models": ["majority", "mine"]}]}, DEFAULT_MODELS
    )
    assert plan.datasets["d"].runs == [("prosody", "majority"), ("prosody", "mine")]


@pytest.mark.parametrize("cores", [64])
def test_more_cores_than_the_machine_has(tmp_path, cores):
    proc = dry_run(tmp_path, {"datasets": [{"name": "d", "adapter": "demo"}]}, "--cores", str(cores))
    assert proc.returncode == 0 and f"--cores {cores}, but this machine has" in proc.out


def test_closing_summary(tmp_path):
    config = {
        "datasets": [{"name": "demo", "adapter": "demo", "n_train": 40, "n_test": 8, "seed": 3}],
        "models": {"mine": {"kind": "logreg", "params": {"C": 1.0}}},
        "runs": [{"feature_sets": ["prosody"], "models": ["majority", "mine"]}],
        "evaluation": {"n_bootstrap": 100},
        "report": "results/mine.html",  # one report per config
    }
    proc = run_snakemake(tmp_path, config)
    assert (tmp_path / "results/mine.html").stat().st_size > 0 and not (
        tmp_path / "results/report.html"
    ).exists()
    summary = proc.stderr[proc.stderr.index("serflow summary") :]
    assert "demo: 48 clips (40 labelled, 8 test), 0 rejected" in summary
    assert "loso, speaker-independent;" in summary
    assert "1 other runs not distinguishable from it (paired test, p >= 0.05)" in summary
    assert "runner-up prosody-majority: UAR -" in summary and "paired p = " in summary
    comparison = json.loads((tmp_path / "results/demo/comparison.json").read_text())
    submissions = json.loads((tmp_path / "results/demo/submissions.json").read_text())
    assert comparison["best"] == submissions["best"] == "prosody-mine"
    assert submissions["runner_up"]["run"] == comparison["runner_up"] == "prosody-majority"
    assert submissions["runner_up"]["p_value"] == comparison["runs"]["prosody-majority"]["p_value"]
    assert (
        comparison["runs"]["prosody-mine"]["uar_diff"] == 0
        and comparison["runs"]["prosody-mine"]["p_value"] == 1
    )
    assert "submission: results/demo/submission.csv" in summary and "report: results/mine.html" in summary
    # Another selection metric refits nothing: only the submissions and the report rerun.
    for change in ({"metric": "accuracy"}, {"prefer_domain_norm": "never"}):
        proc = run_snakemake(tmp_path, {**config, "evaluation": {"n_bootstrap": 100, **change}}, "-n")
        assert "rule train:" not in proc.stdout and "submissions:" in proc.stdout and "report:" in proc.stdout


def test_serflow_check_names_the_yaml_line_and_the_key(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    serflow = str(Path(sys.executable).with_name("serflow"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        'datasets:\n  - name: mine\n    adapter: folders\n    speaker_pattern: "^(?P<speaker>\\d+)_"\n'
    )
    proc = subprocess.run([serflow, "check", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert f"{bad}, line 4, column" in proc.stderr and "write regexes in single quotes" in proc.stderr
    typo = tmp_path / "typo.yaml"
    typo.write_text("datasets: []\nevalution: {}\n")
    proc = subprocess.run([serflow, "check", str(typo)], capture_output=True, text=True)
    assert proc.returncode == 2 and "did you mean 'evaluation'?" in proc.stderr
    corpus = folders_corpus(tmp_path / "corpus")
    good = tmp_path / "good.yaml"
    good.write_text(
        f"datasets:\n  - name: mine\n    adapter: folders\n    root: {corpus}\n"
        "    speaker_pattern: '^clip(?P<speaker>\\d)'\n"
    )
    proc = subprocess.run([serflow, "check", str(good)], capture_output=True, text=True)
    assert proc.returncode == 0 and "corpus listing look right" in proc.stdout, proc.stderr
    # A pattern that matches no file name: said, with what protocol auto then does.
    good.write_text(good.read_text().replace("^clip", "^spk"))
    proc = subprocess.run([serflow, "check", str(good)], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert "speaker_pattern '^spk(?P<speaker>\\\\d)' matched 0 of 12" in proc.stderr
    assert "falls back to stratified_kfold: speaker-DEPENDENT" in proc.stderr
    # A value of the wrong type: the schema's one line, not the schema.
    good.write_text(good.read_text() + "evaluation: {n_splits: many}\n")
    proc = subprocess.run([serflow, "check", str(good)], capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) < 4, proc.stderr


def test_numbers_given_as_text_by_a_profile_or_the_command_line():
    # Snakemake reads nested --config values and a profile's config: with YAML's BaseLoader
    config = {
        "extraction": {"shards": "64"},
        "training": {"fold_workers": "8"},
        "features": {"f0_max": "400", "extended": "true", "frames": {"streams": ["mel"], "n_mels": "64"}},
        "models": {
            "m": {"kind": "logreg", "params": {"C": "0.1", "solver": "lbfgs"}, "speaker_norm": "true"}
        },
        "datasets": [{"name": "001", "adapter": "folders", "root": "7", "label_map": {"a": "1"}}],
    }
    coerce_text_values(config, SCHEMA)
    # shards also takes text ("auto", or digits); where text is valid it is left as it is
    assert config["extraction"] == {"shards": "64"} and config["training"] == {"fold_workers": 8}
    assert config["features"] == {
        "f0_max": 400.0,
        "extended": True,
        "frames": {"streams": ["mel"], "n_mels": 64},
    }
    assert config["models"]["m"] == {
        "kind": "logreg",
        "params": {"C": 0.1, "solver": "lbfgs"},
        "speaker_norm": True,
    }
    assert config["datasets"][0] == {
        "name": "001",
        "adapter": "folders",
        "root": "7",
        "label_map": {"a": "1"},
    }


def test_the_slurm_profile_as_shipped_plans_the_workflow(tmp_path):
    """The README's SLURM command, as a dry run: the profile's own config: block must validate."""
    corpus = folders_corpus(tmp_path / "corpus")
    cfg = tmp_path / "my.yaml"
    cfg.write_text(
        yaml.safe_dump({"datasets": [{"name": "mine", "adapter": "folders", "root": str(corpus)}]})
    )
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "-n"]
    cmd += ["--workflow-profile", str(REPO / "profiles" / "slurm"), "--configfile", str(cfg)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=SNAKEMAKE_ENV)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the profile's 64 shards reached the plan
    assert re.search(r"^extract_features\s+64$", proc.stdout, re.M), proc.stdout[-3000:]
