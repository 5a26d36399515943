"""Scale benchmark: a synthetic corpus of 20 000 short clips through the whole workflow.

  1. The demo generator writes the corpus (``snakemake results/scale/corpus``),
     20 000 clips of 0.5-1 s, 8 speakers.
  2. A dry run of the whole workflow (time, number of jobs planned).
  3. The whole workflow with ``--cores N`` (prosody and all tables; majority, logreg
     and xgboost; 5 speaker-grouped folds), then a no-op dry run.
  4. Baselines measured here: the extractor as a warm single-thread loop over a
     sample of the same files (extrapolated), and the peak memory of a bare Python
     process that imports what the merge job imports.
Prints times, job counts, peak memory (RSS) per rule from the benchmark files, the
feature tables' in-memory size, and the ratios.

    python bench/bench_scale.py [--workdir /tmp/serflow-scale] [--n-clips 20000] [--cores 2]
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import yaml
from benchlib import REPO, SNAKEMAKE

BARE_MERGE_IMPORTS = (
    "import resource, librosa, pandas, pyarrow.parquet, serflow.features.tables, serflow.runtime;"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
)


def snakemake(workdir: Path, cores: int, *args: str) -> tuple[float, str]:
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir)]
    cmd += ["--configfile", str(workdir / "config.yaml"), "--cores", str(cores), *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall, proc.stdout + proc.stderr


def planned_jobs(output: str) -> int:
    """Total of the 'Job stats' table a dry run prints."""
    m = re.search(r"^total\s+(\d+)", output, re.M)
    return int(m[1]) if m else 0


def rule_benchmarks(workdir: Path) -> dict[str, list[dict]]:
    """Rule -> rows (s, max_rss, ...) of its jobs' benchmark files."""
    out = defaultdict(list)
    root = workdir / "benchmarks"
    for path in sorted(root.rglob("*.tsv")):
        rule = path.relative_to(root).parts[1] if len(path.relative_to(root).parts) > 2 else "manifest"
        with open(path) as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        out[rule].append({k: float(v) for k, v in row.items() if re.match(r"^[\d.]+$", v or "")})
    return out


def extraction_loop(paths, n: int) -> float:
    """Seconds per clip of a warm single-thread extraction loop over ``n`` of ``paths``."""
    from serflow.corpus.audio import load_audio
    from serflow.features import FeatureSpec
    from serflow.runtime import limit_threads

    limit_threads(1)
    spec = FeatureSpec.from_config({})
    sample = paths[:: max(1, len(paths) // n)][:n]
    spec.extract(load_audio(sample[0], spec.sample_rate))
    start = time.perf_counter()
    for path in sample:
        spec.extract(load_audio(path, spec.sample_rate))
    return (time.perf_counter() - start) / len(sample)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/serflow-scale"))
    ap.add_argument("--n-clips", type=int, default=20000)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--loop-sample", type=int, default=400, help="clips in the in-process loop")
    args = ap.parse_args()

    workdir = args.workdir
    if (workdir / "results").exists():
        sys.exit(f"{workdir}/results exists: use an empty --workdir")
    workdir.mkdir(parents=True, exist_ok=True)
    n_test = args.n_clips // 10
    config = {
        "datasets": [
            {
                "name": "scale",
                "adapter": "demo",
                "n_train": args.n_clips - n_test,
                "n_test": n_test,
                "n_speakers": 8,
                "duration_range": [0.5, 1.0],
                "seed": 0,
            }
        ],
        "feature_tables": ["prosody", "all"],
        "models": {
            "majority": {"kind": "majority"},
            "logreg": {"kind": "logreg", "class_weight": "balanced"},
            "xgboost": {"kind": "xgboost", "params": {"n_estimators": 200, "max_depth": 4, "max_bin": 64}},
        },
        "runs": [{"feature_sets": ["prosody", "all"], "models": ["majority", "logreg", "xgboost"]}],
        "evaluation": {"protocol": "group_kfold", "n_splits": 5, "n_bootstrap": 200},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    print(f"workdir {workdir}, {args.n_clips} clips, --cores {args.cores}")

    wall, _ = snakemake(workdir, args.cores, "results/scale/corpus")
    corpus = sorted((workdir / "results/scale/corpus").rglob("*.wav"))
    print(f"corpus generation: {wall:.1f} s for {len(corpus)} files")

    wall, out = snakemake(workdir, args.cores, "-n")
    print(f"dry run before the run: {wall:.2f} s, {planned_jobs(out)} jobs planned")

    wall, out = snakemake(workdir, args.cores)
    ran = len(re.findall(r"^(?:local)?(?:rule|checkpoint) \w+:$", out, re.M))
    print(f"whole workflow: {wall:.1f} s wall, {ran} jobs run")

    wall, out = snakemake(workdir, args.cores, "-n")
    print(f"no-op dry run after the run: {wall:.2f} s ({planned_jobs(out)} jobs to do)")

    bench = rule_benchmarks(workdir)
    print("\nper rule (from the benchmark files): jobs, total s, max s, max RSS MB")
    for rule, rows in sorted(bench.items()):
        secs = [r.get("s", 0.0) for r in rows]
        rss = max(r.get("max_rss", 0.0) for r in rows)
        print(f"  {rule:16s} {len(rows):4d} {sum(secs):9.1f} {max(secs):8.1f} {rss:9.1f}")

    import pyarrow.parquet as pq

    bare = float(
        subprocess.run([sys.executable, "-c", BARE_MERGE_IMPORTS], capture_output=True, text=True).stdout
    )
    merge = {Path(r).stem: r for r in (workdir / "benchmarks/scale/feature_table").glob("*.tsv")}
    print(f"\nbaseline: bare Python with the merge job's imports, peak RSS {bare:.0f} MB")
    for name in config["feature_tables"]:
        path = workdir / f"results/scale/features/{name}.parquet"
        table = pq.read_table(path)
        with open(merge[name]) as fh:
            rss = float(next(csv.DictReader(fh, delimiter="\t"))["max_rss"])
        mb = table.nbytes / 2**20
        print(
            f"  table {name}: {table.num_rows} rows x {table.num_columns} columns, {mb:.1f} MB in memory, "
            f"{path.stat().st_size / 2**20:.1f} MB on disk; merge peak RSS {rss:.0f} MB, "
            f"(RSS - baseline) / table = {(rss - bare) / mb:.2f}"
        )

    per_clip = extraction_loop(corpus, args.loop_sample)
    shards = bench.get("extract", [])
    jobs_wall = max(r["s"] for r in shards)
    loop_total = per_clip * len(corpus)
    print(
        f"\nextraction: {len(shards)} shard jobs, longest {jobs_wall:.1f} s,"
        f" summed {sum(r['s'] for r in shards):.1f} s;"
        f" in-process loop {per_clip * 1000:.1f} ms/clip -> {loop_total:.1f} s single-threaded,"
        f" {loop_total / args.cores:.1f} s ideally split over {args.cores} cores;"
        f" ratio workflow/ideal {jobs_wall / (loop_total / args.cores):.2f}"
    )


if __name__ == "__main__":
    main()
