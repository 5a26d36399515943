"""The encoders whose weights ship in their wheels, on EmoDB: speed, pseudo-speakers, LOSO.

    python bench/bench_encoders.py [--workdir /tmp/serflow-bench-encoders] [--cores 2] [--skip-workflow]

1. Clips per second on one thread, every clip of EmoDB loaded at 16 kHz, against the
   default ``descriptors`` in the same run: ``dvector`` (Resemblyzer's encoder), Silero VAD
   trimming alone (``trim: silero``'s speech span), ``voiceprint``.
2. Pseudo-speakers: ``SpeakerClustering`` (the defaults of ``speakers: cluster``) of
   voiceprints and of d-vectors (untrimmed and trimmed) against EmoDB's 10 speakers, in
   10 groups and with the count chosen by silhouette, with and without the emotion
   directions projected out: adjusted Rand index and purity.
3. ``config/recipes/emodb_encoders.yaml`` through the workflow: LOSO UAR with 95% intervals
   of the best handcrafted set, d-vectors alone and both, on whole and on trimmed clips.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import yaml
from benchlib import EMODB, REPO, snakemake_command, timed


def speed_and_clusters() -> None:
    import torch

    from serflow.corpus.audio import load_audio
    from serflow.corpus.speakers import SpeakerClustering, clustering_quality
    from serflow.features import Clip, Descriptors, DVector, Voiceprint

    torch.set_num_threads(1)
    files = sorted(EMODB.glob("*.wav"))
    clips = [load_audio(f, 16000) for f in files]
    speakers = np.array([f.name[:2] for f in files])
    emotions = np.array([f.name[5] for f in files], dtype=object)
    trimmer = Descriptors(trim="silero")
    steps = {
        "descriptors (baseline)": lambda c: Descriptors().compute(c),
        "voiceprint": lambda c: Voiceprint().compute(c),
        "dvector": lambda c: DVector().compute(c),
        "silero VAD span (trim: silero)": lambda c: trimmer.prepare(c),
        "dvector of the trimmed clip": lambda c: DVector(trim="silero").value(c),
    }
    steps["silero VAD span (trim: silero)"](Clip(clips[0], 16000))  # load the models once
    steps["dvector"](Clip(clips[0], 16000))
    values, rates = {}, {}
    print(f"1. clips per second, one thread, {len(files)} EmoDB clips at 16 kHz:")
    for name, step in steps.items():
        start = time.perf_counter()
        values[name] = [step(Clip(y, 16000)) for y in clips]
        rates[name] = len(clips) / (time.perf_counter() - start)
        ratio = rates[name] / rates["descriptors (baseline)"]
        print(f"   {name:32s} {rates[name]:7.1f} clips/s  ({ratio:.2f} x descriptors)")
    seconds = np.array([v.seconds for v in values["silero VAD span (trim: silero)"]])
    whole = np.mean([y.size for y in clips]) / 16000
    print(f"   trimmed clip length: mean {seconds.mean():.2f} s of {whole:.2f} s")

    print("\n2. pseudo-speakers against EmoDB's 10 speakers (ARI / purity / groups):")
    for name in ("voiceprint", "dvector", "dvector of the trimmed clip"):
        x = np.vstack(values[name])
        cells = []
        for n_groups in (10, "auto"):
            for remove in (True, False):
                c = SpeakerClustering(n_groups=n_groups, remove_label_directions=remove)
                q = clustering_quality(c.fit_predict(x, emotions), speakers)
                cells.append(
                    f"{n_groups!s:>4s} {'emotion removed' if remove else 'raw':15s}"
                    f" {q['adjusted_rand_index']:.3f} / {q['purity']:.3f} / {q['n_groups']}"
                )
        print(f"   {name}:\n      " + "\n      ".join(cells))


def workflow(workdir: Path, cores: int) -> None:
    config = yaml.safe_load((REPO / "config/recipes/emodb_encoders.yaml").read_text())
    for ds in config["datasets"]:
        ds["root"] = str(EMODB)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = snakemake_command(
        workdir, "--configfile", str(workdir / "config.yaml"), "--cores", str(cores), "-q"
    )
    took = timed(cmd)
    print(f"\n3. emodb_encoders.yaml through the workflow, {cores} cores: {took:.0f} s")
    for ds in ("emodb", "emodb_trim"):
        for run in ("all-logreg", "dvec-logreg", "all_dvec-logreg"):
            m = json.loads((workdir / f"results/{ds}/runs/{run}/metrics.json").read_text())
            ci = m["uar_ci95"]
            print(
                f"   {ds:10s} {run:16s} {m['n_features']:5d} columns  LOSO UAR {m['uar']:.3f}"
                f" [{ci[0]:.3f}, {ci[1]:.3f}]  accuracy {m['accuracy']:.3f}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/serflow-bench-encoders"))
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--skip-workflow", action="store_true")
    args = ap.parse_args()
    speed_and_clusters()
    if not args.skip_workflow:
        workflow(args.workdir, args.cores)


if __name__ == "__main__":
    main()
