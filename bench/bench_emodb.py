"""Benchmark the workflow on all of EmoDB against in-process baselines measured in the same run.

  1. The whole workflow (``snakemake --cores N``, default config: every model on the
     prosody, mfcc_deltas and all feature sets, LOSO) from an empty results folder.
  2. The same again in a fresh folder, stage by stage: manifest, extraction (the
     shard jobs), tables, training (one job per feature set x model), report; then a
     no-op rerun.
  3. Baselines in this process: the extractor as a warm single-thread loop over the
     same files, and every run's evaluation + refit one after the other.
Prints wall and CPU times, files/s, real-time factor (audio s per CPU s), the ratios,
per-run training times (from the rules' benchmark files) and the LOSO scores.

    python bench/bench_emodb.py [--emodb ../shared/data/emodb/wav] [--cores 2] [--skip-baselines]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from benchlib import REPO, SNAKEMAKE


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def snakemake(workdir: Path, cores: int, *targets: str) -> tuple[float, float]:
    """Run the workflow for ``targets``; return (wall seconds, CPU seconds of all processes)."""
    cmd = [SNAKEMAKE, *targets, "-s", str(REPO / "Snakefile"), "-d", str(workdir)]
    cmd += ["--configfile", str(workdir / "config.yaml"), "--cores", str(cores), "--quiet", "all"]
    cpu, start = children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"snakemake failed:\n{proc.stderr[-4000:]}")
    return wall, children_cpu() - cpu


def in_process_loop(paths, spec) -> tuple[float, float, float]:
    """Warm single-thread loop: (wall s, CPU s, audio s) over ``paths`` after one warm-up file."""
    from serflow.corpus.audio import load_audio
    from serflow.runtime import limit_threads

    limit_threads(1)
    spec.extract(load_audio(paths[0], spec.sample_rate))
    audio = 0.0
    cpu, start = time.process_time(), time.perf_counter()
    for path in paths:
        y = load_audio(path, spec.sample_rate)
        spec.extract(y)
        audio += y.size / spec.sample_rate
    return time.perf_counter() - start, time.process_time() - cpu, audio


def in_process_training(workdir: Path, metrics: dict) -> tuple[float, float]:
    """Every run's evaluation and refit in this process, 1 thread, with the settings the
    workflow recorded in its metrics files: (wall s, CPU s)."""
    from serflow.models.training import evaluate_run, fit_final, load_table

    cpu, start = time.process_time(), time.perf_counter()
    for m in metrics.values():
        table, cols = load_table(workdir / f"results/emodb/features/{m['feature_set']}.parquet")
        evaluate_run(table, cols, m["model"], m["evaluation"])
        fit_final(table, cols, m["model"], m["evaluation"])
    return time.perf_counter() - start, time.process_time() - cpu


def new_workdir(emodb: Path, cores: int) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix="serflow-bench-"))
    config = {
        "datasets": [{"name": "emodb", "adapter": "emodb", "root": str(emodb.resolve())}],
        "extraction": {"shards": cores},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    return workdir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--emodb", type=Path, default=REPO.parent / "shared" / "data" / "emodb" / "wav")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--skip-baselines", action="store_true", help="skip the in-process baselines")
    args = ap.parse_args()
    import pandas as pd

    from serflow.features import FeatureSpec

    if not args.emodb.is_dir():
        sys.exit(f"EmoDB not found at {args.emodb}")
    ds = "results/emodb"

    # 1. End to end in one invocation.
    whole = new_workdir(args.emodb, args.cores)
    t_whole, cpu_whole = snakemake(whole, args.cores)

    # 2. Stage by stage in a fresh folder (own cache).
    workdir = new_workdir(args.emodb, args.cores)
    shards = [f"{ds}/features/descriptors/{k:03d}.parquet" for k in range(args.cores)]
    tables = [
        f"{ds}/features/{s}.parquet" for s in ("prosody", "mfcc", "mfcc_deltas", "spectral", "mel", "all")
    ]
    t_manifest, _ = snakemake(workdir, args.cores, f"{ds}/manifest.parquet")
    t_extract, cpu_extract = snakemake(workdir, args.cores, *shards)
    t_tables, _ = snakemake(workdir, args.cores, *tables, f"{ds}/rejected.csv")
    runs = sorted(p.parent.name for p in (whole / ds / "runs").glob("*/metrics.json"))
    t_train, cpu_train = snakemake(workdir, args.cores, *(f"{ds}/runs/{r}/metrics.json" for r in runs))
    t_report, _ = snakemake(workdir, args.cores)
    t_noop, _ = snakemake(workdir, args.cores)

    manifest = pd.read_parquet(workdir / f"{ds}/manifest.parquet")
    n, audio = len(manifest), float(manifest["duration_s"].sum())
    metrics = {r: json.loads((workdir / ds / "runs" / r / "metrics.json").read_text()) for r in runs}
    fit_s = {
        r: float((workdir / f"benchmarks/emodb/train/{r}.tsv").read_text().splitlines()[1].split()[0])
        for r in runs
    }

    rows = [
        ("files", n, ""),
        ("audio (s)", round(audio, 1), ""),
        (
            "end to end, wall (s)",
            round(t_whole, 1),
            f"one snakemake --cores {args.cores}, {len(runs)} runs (target <= 300)",
        ),
        ("end to end, CPU (s)", round(cpu_whole, 1), "all processes"),
        ("stage: manifest (s)", round(t_manifest, 2), ""),
        ("stage: extraction, wall (s)", round(t_extract, 2), f"{args.cores} shard jobs"),
        ("stage: extraction, files/s", round(n / t_extract, 1), ""),
        ("stage: extraction, CPU (s)", round(cpu_extract, 2), "all processes incl. Snakemake"),
        ("workflow real-time factor", round(audio / cpu_extract, 1), "audio s per CPU s (target > 33)"),
        ("stage: tables (s)", round(t_tables, 2), "6 feature tables + rejected.csv"),
        ("stage: training, wall (s)", round(t_train, 2), f"{len(runs)} train jobs"),
        ("stage: training, CPU (s)", round(cpu_train, 2), "all processes incl. Snakemake"),
        ("stage: report (s)", round(t_report, 2), ""),
        (
            "report size (MB)",
            round((workdir / "results/report.html").stat().st_size / 2**20, 2),
            "target < 10",
        ),
        ("no-op rerun (s)", round(t_noop, 2), "target < 10"),
    ]
    if not args.skip_baselines:
        loop_wall, loop_cpu, loop_audio = in_process_loop(list(manifest["path"]), FeatureSpec.from_config({}))
        assert abs(loop_audio - audio) < 1.0
        train_wall, train_cpu = in_process_training(workdir, metrics)
        rows += [
            ("in-process extraction loop, wall (s)", round(loop_wall, 2), "1 process, 1 thread, warm"),
            ("in-process extraction loop, files/s", round(n / loop_wall, 1), ""),
            ("in-process real-time factor", round(loop_audio / loop_cpu, 1), "audio s per CPU s"),
            ("ratio extraction workflow/loop, wall", round(t_extract / loop_wall, 2), "target <= 1.2"),
            (
                "ratio extraction workflow/loop, CPU",
                round(cpu_extract / loop_cpu, 2),
                "processes + Snakemake",
            ),
            ("in-process training, wall (s)", round(train_wall, 2), "every run in turn, 1 thread"),
            (
                "ratio training workflow/in-process, wall",
                round(t_train / train_wall, 2),
                f"{args.cores} cores vs 1",
            ),
            ("ratio training workflow/in-process, CPU", round(cpu_train / train_cpu, 2), ""),
        ]
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value!s:>8}  {note}")
    print("\nrun                          protocol   UAR [95% CI]            accuracy  macro-F1  job (s)")
    for r in sorted(runs, key=lambda r: -metrics[r]["uar"]):
        m = metrics[r]
        ci = m["uar_ci95"]
        print(
            f"{r:<28} {m['protocol']:<9} {m['uar']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]  "
            f"{m['accuracy']:.3f}     {m['macro_f1']:.3f}     {fit_s[r]:.1f}"
        )
    print(f"(workdirs {whole} {workdir})")


if __name__ == "__main__":
    main()
