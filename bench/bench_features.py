"""Benchmark feature extraction on EmoDB: the workflow against an in-process loop.

Runs, in one process and on the same files:
  1. the workflow (``snakemake --cores N``) from an empty results folder, stage by stage:
     manifest, extraction (the shard jobs), tables; then a no-op rerun;
  2. the same extractor as a warm loop over the same files in this process (1 thread).
Prints files/s, real-time factor (audio seconds per CPU second) and their ratios.

    python bench/bench_features.py [--emodb ../shared/data/emodb/wav] [--cores 2]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


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


def in_process_loop(paths, params) -> tuple[float, float, float]:
    """Warm single-thread loop: (wall s, CPU s, audio s) over ``paths`` after one warm-up file."""
    from serflow.audio import load_audio
    from serflow.features import extract_features
    from serflow.runtime import limit_threads

    limit_threads(1)
    extract_features(load_audio(paths[0], params.sample_rate), params)
    audio = 0.0
    cpu, start = time.process_time(), time.perf_counter()
    for path in paths:
        y = load_audio(path, params.sample_rate)
        extract_features(y, params)
        audio += y.size / params.sample_rate
    return time.perf_counter() - start, time.process_time() - cpu, audio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--emodb", type=Path, default=REPO.parent / "shared" / "data" / "emodb" / "wav")
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    import pandas as pd

    from serflow.features import FeatureParams

    if not args.emodb.is_dir():
        sys.exit(f"EmoDB not found at {args.emodb}")
    workdir = Path(tempfile.mkdtemp(prefix="serflow-bench-"))
    config = {
        "datasets": [{"name": "emodb", "adapter": "emodb", "root": str(args.emodb.resolve())}],
        "extraction": {"shards": args.cores},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    ds = "results/emodb"
    shards = [f"{ds}/features/shards/{k:03d}.parquet" for k in range(args.cores)]

    t_manifest, _ = snakemake(workdir, args.cores, f"{ds}/manifest.parquet")
    t_extract, cpu_extract = snakemake(workdir, args.cores, *shards)
    t_tables, _ = snakemake(workdir, args.cores)
    t_noop, _ = snakemake(workdir, args.cores)

    manifest = pd.read_parquet(workdir / f"{ds}/manifest.parquet")
    n, audio = len(manifest), float(manifest["duration_s"].sum())
    loop_wall, loop_cpu, loop_audio = in_process_loop(list(manifest["path"]), FeatureParams())
    assert abs(loop_audio - audio) < 1.0

    rows = [
        ("files", n, ""),
        ("audio (s)", round(audio, 1), ""),
        ("manifest stage (s)", round(t_manifest, 2), ""),
        (
            "workflow extraction, wall (s)",
            round(t_extract, 2),
            f"{args.cores} cores, {args.cores} shard jobs",
        ),
        ("workflow extraction, files/s", round(n / t_extract, 1), ""),
        ("workflow extraction, CPU (s)", round(cpu_extract, 2), "all processes incl. Snakemake"),
        ("workflow real-time factor", round(audio / cpu_extract, 1), "audio s per CPU s (target > 33)"),
        ("in-process loop, wall (s)", round(loop_wall, 2), "1 process, 1 thread, warm"),
        ("in-process loop, files/s", round(n / loop_wall, 1), ""),
        ("in-process real-time factor", round(loop_audio / loop_cpu, 1), "audio s per CPU s"),
        ("ratio workflow/loop, wall", round(t_extract / loop_wall, 2), "target <= 1.2"),
        ("ratio workflow/loop, CPU", round(cpu_extract / loop_cpu, 2), "overhead of processes + Snakemake"),
        ("tables stage (s)", round(t_tables, 2), "6 feature tables + rejected.csv"),
        ("no-op rerun (s)", round(t_noop, 2), "target < 10"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value!s:>8}  {note}")
    print(f"(workdir {workdir})")


if __name__ == "__main__":
    main()
