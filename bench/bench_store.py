"""Benchmark the per-extractor feature store on all of EmoDB: what enabling an extractor costs.

  1. A default run's extraction (``descriptors`` only) in a fresh folder and cache.
  2. In the same folder, ``extended: true``: only the extended extractor's shard jobs run;
     the descriptors' cache entries are checked to be untouched.
  3. A full recompute of both extractors in a fresh folder and cache: what enabling
     ``extended`` cost when one cache key covered every extractor.
  4. In this process, one thread: descriptors and extended over one shared analysis per
     clip, against each on its own (the price of separate jobs, which share no STFT/YIN).
Prints wall times, clips/s and the ratios.

    python bench/bench_store.py [--emodb ../shared/data/emodb/wav] [--cores 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from benchlib import REPO, SNAKEMAKE


def extract(workdir: Path, cores: int, features: dict, extractors) -> float:
    """Wall seconds of the shard jobs of ``extractors`` (the manifest built beforehand)."""
    config = {
        "datasets": [{"name": "emodb", "adapter": "emodb", "root": str(workdir.parent / "emodb")}],
        "extraction": {"shards": cores},
        "features": features,
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    opts = ["-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile"]
    opts += [str(workdir / "config.yaml"), "--cores", str(cores), "--quiet", "all"]
    subprocess.run([SNAKEMAKE, "results/emodb/manifest.parquet", *opts], check=True, capture_output=True)
    targets = [f"results/emodb/features/{e}/{k:03d}.parquet" for e in extractors for k in range(cores)]
    start = time.perf_counter()
    proc = subprocess.run([SNAKEMAKE, *targets, *opts], capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"snakemake failed:\n{proc.stderr[-4000:]}")
    return time.perf_counter() - start


def entries(cache: Path, extractor: str) -> dict:
    return {str(p): p.stat().st_mtime_ns for p in (cache / extractor).rglob("*.npy")}


def in_process(paths) -> tuple[float, float, float]:
    """(shared analysis, descriptors alone, extended alone) seconds over ``paths``, one thread."""
    from serflow.corpus.audio import load_audio
    from serflow.features import Clip, Descriptors, Extended
    from serflow.runtime import limit_threads

    limit_threads(1)
    d, x = Descriptors(), Extended()
    clips = [load_audio(p, 16000) for p in paths]
    x.compute(Clip(clips[0], 16000))  # warm-up
    out = []
    for run in ((d, x), (d,), (x,)):
        start = time.perf_counter()
        for y in clips:
            clip = Clip(y, 16000)
            for e in run:
                e.compute(clip)
        out.append(time.perf_counter() - start)
    return tuple(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--emodb", type=Path, default=REPO.parent / "shared" / "data" / "emodb" / "wav")
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    if not args.emodb.is_dir():
        sys.exit(f"EmoDB not found at {args.emodb}")
    root = Path(tempfile.mkdtemp(prefix="serflow-store-"))
    (root / "emodb").symlink_to(args.emodb.resolve())
    paths = sorted(args.emodb.glob("*.wav"))
    n = len(paths)

    a = root / "a"
    a.mkdir()
    t_default = extract(a, args.cores, {}, ["descriptors"])
    before = entries(a / "results/cache", "descriptors")
    t_enable = extract(a, args.cores, {"extended": True}, ["extended"])
    assert entries(a / "results/cache", "descriptors") == before, "descriptors entries were touched"
    assert len(entries(a / "results/cache", "extended")) == n

    b = root / "b"
    b.mkdir()
    t_full = extract(b, args.cores, {"extended": True}, ["descriptors", "extended"])

    shared, alone_d, alone_x = in_process(paths)
    rows = [
        ("clips", n, "all of EmoDB"),
        ("default extraction (descriptors), wall s", round(t_default, 1), f"{args.cores} shard jobs"),
        ("enable extended after it, wall s", round(t_enable, 1), "only extended's shard jobs ran"),
        ("full recompute (descriptors + extended), wall s", round(t_full, 1), "fresh cache"),
        ("ratio enable / full recompute", round(t_enable / t_full, 2), "the old single key recomputed all"),
        ("in process, both over one shared analysis, s", round(shared, 1), "1 thread"),
        ("in process, descriptors alone, s", round(alone_d, 1), ""),
        ("in process, extended alone, s", round(alone_x, 1), ""),
        ("ratio separate / shared analysis", round((alone_d + alone_x) / shared, 2), "cost of separate jobs"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value!s:>8}  {note}")
    print(f"(workdirs under {root})")


if __name__ == "__main__":
    main()
