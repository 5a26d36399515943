"""Manifest cost on a large synthetic corpus: first build, adding one clip, and a dry run.

A folders corpus of N clips of 0.1 s (hard links to one file, 8 labels, 100 speakers) is
built once; then, for each Snakefile given (say, this checkout and an older one):

  1. ``snakemake <dataset>/manifest.parquet`` from scratch (every file probed);
  2. one clip added, the same target again (the time to add one clip);
  3. ``snakemake -n`` of the whole workflow (the per-invocation cost of tracking every file).

    python bench/bench_manifest.py --n-clips 200000 [--snakefile Snakefile OLD/Snakefile] [--cores 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml
from benchlib import REPO, SNAKEMAKE, timed


def corpus(root: Path, n: int) -> Path:
    """``n`` hard links to 8 source files (a file takes at most 65 000 links here)."""
    t = np.arange(1600) / 16000
    sources = []
    for k in range(8):
        sources.append(root / f"source{k}.wav")
        y = (0.3 * np.sin(2 * np.pi * (150 + 10 * k) * t)).astype(np.float32)
        sf.write(sources[-1], y, 16000, subtype="PCM_16")
        (root / "corpus" / f"label{k}").mkdir(parents=True)
    for i in range(n):
        os.link(sources[i % 8], root / "corpus" / f"label{i % 8}" / f"spk{i % 100:03d}_{i:07d}.wav")
    return root / "corpus"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-clips", type=int, default=200_000)
    ap.add_argument("--snakefile", type=Path, nargs="+", default=[REPO / "Snakefile"])
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="serflow-manifest-"))
    start = time.perf_counter()
    data = corpus(root, args.n_clips)
    print(f"{args.n_clips} clips written in {time.perf_counter() - start:.0f} s under {root}")
    config = {
        "datasets": [
            {
                "name": "big",
                "adapter": "folders",
                "root": str(data),
                "speaker_pattern": "^spk(?P<speaker>\\d+)",
            }
        ],
        "feature_tables": ["prosody"],
        "runs": [{"feature_sets": ["prosody"], "models": ["majority"]}],
        "extraction": {"shards": 16},
    }
    for snakefile in args.snakefile:
        work = root / f"work-{snakefile.resolve().parent.name}"
        work.mkdir()
        (work / "config.yaml").write_text(yaml.safe_dump(config))
        base = [SNAKEMAKE, "-s", str(snakefile.resolve()), "-d", str(work), "--configfile", "config.yaml"]
        base += ["--cores", str(args.cores)]
        first = timed([*base, "results/big/manifest.parquet"], work)
        extra = data / "label0" / "spk000_extra.wav"
        shutil.copy(root / "source0.wav", extra)
        add_one = timed([*base, "results/big/manifest.parquet"], work)
        dry = timed([*base, "-n"], work)
        extra.unlink()
        print(f"\n{snakefile}")
        print(f"  first manifest (every file probed)   {first:8.1f} s")
        print(f"  one clip added, manifest rerun       {add_one:8.1f} s")
        print(f"  dry run of the whole workflow (-n)   {dry:8.1f} s")


if __name__ == "__main__":
    main()
