"""Shared fixtures: the EmoDB folder, small audio writers and a Snakemake runner."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

REPO = Path(__file__).resolve().parents[1]
EMODB = Path(os.environ.get("SERFLOW_EMODB", REPO.parent / "shared" / "data" / "emodb" / "wav"))
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# Probabilities computed along two paths (another process, another row layout) agree to
# round-off (~1e-16) but not always to the last bit, which depends on the machine's BLAS.
# A wrong feature, scaling or model moves them by far more than 1e-9.
PROBA_ATOL = 1e-9


@pytest.fixture(scope="session")
def emodb() -> Path:
    """The EmoDB wav folder, or a skip naming where it was looked for."""
    if not EMODB.is_dir() or not any(EMODB.glob("*.wav")):
        pytest.skip(f"EmoDB not found at {EMODB} (set SERFLOW_EMODB to its wav folder)")
    return EMODB


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium WebDriver (Chromium installed with apt-get when missing), or a skip."""
    from browser import ensure_chromium, start_driver

    reason = ensure_chromium()
    if reason:
        pytest.skip(reason)
    driver = start_driver()
    yield driver
    driver.quit()


def emodb_subset(emodb: Path, dest: Path, speakers=("03", "08", "09")) -> Path:
    """Copy the clips of a few EmoDB speakers into ``dest`` (a temporary folder)."""
    dest.mkdir(parents=True, exist_ok=True)
    for wav in sorted(emodb.glob("*.wav")):
        if wav.name[:2] in speakers:
            shutil.copy2(wav, dest / wav.name)
    return dest


def tone(freq=200.0, seconds=1.0, sr=16000, amp=0.5, harmonics=5) -> np.ndarray:
    """A harmonic tone with a gentle envelope (voiced-speech stand-in)."""
    t = np.arange(int(seconds * sr)) / sr
    y = sum(np.sin(2 * np.pi * freq * h * t) / h for h in range(1, harmonics + 1))
    env = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.05)
    return (amp * env * y / np.abs(y).max()).astype(np.float32)


def write_wav(path: Path, y, sr=16000, subtype="PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sr, subtype=subtype)
    return path


SNAKEMAKE_ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def snakemake_command(workdir: Path, config: dict, *args, cores=2) -> list[str]:
    """The command line running the real workflow in ``workdir`` (``config`` written there)."""
    cfg = workdir / "config.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    return [
        SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(cfg),
        "--cores",
        str(cores),
        *args,
    ]


def run_snakemake(workdir: Path, config: dict, *args, cores=2, check=True):
    """Run the real workflow in ``workdir`` with ``config``; return the completed process."""
    cmd = snakemake_command(workdir, config, *args, cores=cores)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=SNAKEMAKE_ENV)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-6000:]}")
    return proc


def job_counts(proc) -> dict[str, int]:
    """Jobs per rule that actually started ({} when nothing ran).

    Counted from the job headers Snakemake prints when a job starts; its initial
    'Job stats' table is only a plan, revised after checkpoints.
    """
    counts: dict[str, int] = {}
    for m in re.finditer(r"^(?:local)?(?:rule|checkpoint) (\w+):$", proc.stdout + proc.stderr, re.M):
        counts[m[1]] = counts.get(m[1], 0) + 1
    return counts


def cache_files(root: Path) -> dict[str, int]:
    """Cached feature files under ``root`` with their modification times (ns)."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*.npy")}


PREDICT_MODELS = {
    "logreg": {"kind": "logreg", "class_weight": "balanced", "grid": {"C": [0.001, 0.01]}},
    "logreg_spk": {"kind": "logreg", "class_weight": "balanced", "speaker_norm": True, "params": {"C": 0.01}},
}


@pytest.fixture(scope="session")
def emodb_models(emodb, tmp_path_factory) -> Path:
    """A real workflow run on three EmoDB speakers (03, 08, 09): plain and speaker-normalised LogReg."""
    workdir = tmp_path_factory.mktemp("emodb-models")
    corpus = emodb_subset(emodb, workdir / "corpus", speakers=("03", "08", "09"))
    config = {
        "datasets": [{"name": "emodb3", "adapter": "emodb", "root": str(corpus)}],
        "feature_tables": ["all"],
        "models": PREDICT_MODELS,
        "runs": [{"feature_sets": ["all"], "models": list(PREDICT_MODELS)}],
        "evaluation": {"n_bootstrap": 100},
    }
    run_snakemake(workdir, config)
    return workdir / "results/emodb3/runs"
