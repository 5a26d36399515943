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


def _layout(root, example: str) -> None:
    """The folder each 'your own data' example describes, with 12 short tones."""
    import pandas as pd
    from conftest import tone, write_wav

    clips = [
        (f"{spk}_{i}.wav", emo, spk) for spk in ("anna", "ben", "carl") for i, emo in enumerate("ab" * 2)
    ]
    if example == "folders":
        for name, emo, _ in clips:
            write_wav(root / "data/clips" / emo / name, tone(150.0 + 40 * (emo == "b")))
    elif example == "csv":
        for name, _, _ in clips:
            write_wav(root / "data/mine/audio" / name, tone(180.0))
        table = pd.DataFrame(
            {"file": [f"audio/{n}" for n, _, _ in clips], "emotion": [e for _, e, _ in clips]}
            | {"speaker": [s for _, _, s in clips], "split": ["train"] * len(clips)}
        )
        table.to_csv(root / "data/mine/clips.csv", index=False)
    elif example == "competition_seed003":
        d = root / "data/dacon"
        for i, (_, emo, _) in enumerate(clips):
            write_wav(d / "train" / f"TRAIN_{i}.wav", tone(160.0 + 30 * (emo == "b")))
        write_wav(d / "test/TEST_0.wav", tone(170.0))
        rows = [(f"TRAIN_{i}", f"./train/TRAIN_{i}.wav", e) for i, (_, e, _) in enumerate(clips)]
        pd.DataFrame(rows, columns=["id", "path", "label"]).to_csv(d / "train.csv", index=False)
        pd.DataFrame({"id": ["TEST_0"], "path": ["./test/TEST_0.wav"]}).to_csv(d / "test.csv", index=False)
        pd.DataFrame({"id": ["TEST_0"], "label": [""]}).to_csv(d / "sample_submission.csv", index=False)
    else:  # competition_seed000
        d = root / "data/2022-ml-project3"
        for i, (_, emo, _) in enumerate(clips):
            write_wav(d / "train_data/train_data" / f"{i}.wav", tone(160.0 + 30 * (emo == "b")))
        write_wav(d / "test_data/test_data/t0.wav", tone(170.0))
        train = pd.DataFrame(
            {"file_name": [f"{i}.wav" for i in range(len(clips))], "emotion": [e for _, e, _ in clips]}
        )
        train.to_csv(d / "train.csv", index=False)
        pd.DataFrame({"file_name": ["t0.wav"]}).to_csv(d / "test.csv", index=False)
        pd.DataFrame({"file_name": ["t0.wav"], "emotion": [""]}).to_csv(d / "sample_submit.csv", index=False)


@pytest.mark.parametrize("example", ["folders", "csv", "competition_seed003", "competition_seed000"])
def test_your_own_data_examples_plan_on_the_folder_they_describe(example, tmp_path):
    """Each example, unchanged, checks and plans (reading its tables and listing) on its layout."""
    import subprocess

    from conftest import SNAKEMAKE, SNAKEMAKE_ENV

    _layout(tmp_path, example)
    path = REPO / "config/examples" / f"{example}.yaml"
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "-n", "--configfile", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=SNAKEMAKE_ENV)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # a speaker-dependent fallback would be announced; nothing else may be wrong
    warnings = [w for w in proc.stderr.splitlines() if "warning" in w and "falls back to stratified" not in w]
    assert not warnings, proc.stderr[-3000:]
    assert re.search(r"^train\s+\d+$", proc.stdout, re.M)
    if example.startswith("competition"):  # no speaker ids: estimated ones, domain_norm runs
        assert re.search(r"^speakers\s+1$", proc.stdout, re.M) and "falls back" not in proc.stderr
        assert re.search(r"^train\s+27$", proc.stdout, re.M)
