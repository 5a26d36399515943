"""The deep route on EmoDB: the CNN recipes' full LOSO through the workflow, timed, and why
seed 002's loss never fell.

    python bench/bench_cnn.py [--cores 2] [--workdir /tmp/serflow-bench-cnn] [--skip-workflow]
    python bench/bench_cnn.py --runs cnn --pad-frames 128 --skip-stall   (the default alone, 2.0-s padding)

1. ``config/recipes/emodb_cnn.yaml`` (the default CNN and seed 002's) through Snakemake in
   ``--workdir``: wall time, each run's pooled LOSO UAR and accuracy with 95% intervals.
2. Seed 002's network on one LOSO fold of the same log-mel table (test speaker 03), trained
   for a fixed number of epochs three ways: on the logits (as serflow does), and, as the
   write-up did, with a softmax before ``CrossEntropyLoss`` (SGD lr 0.01, then Adam lr 1e-4).
   Prints the training loss per epoch and the held-out UAR of each.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml
from benchlib import EMODB, REPO, snakemake_command, timed

RECIPE = REPO / "config/recipes/emodb_cnn.yaml"


def workflow(workdir: Path, cores: int, runs: list[str], pad_frames: int | None) -> None:
    config = yaml.safe_load(RECIPE.read_text())
    config["datasets"][0]["root"] = str(EMODB)
    config["runs"] = [{"feature_sets": ["logmel"], "models": runs}]
    if pad_frames:  # e.g. 128 frames (2.0 s): the team's EmoDB-2s copy, half the recipe's padding
        config["features"]["frames"]["pad_frames"] = pad_frames
        for name in runs:
            config["models"][name]["params"]["n_frames"] = pad_frames
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    config_file = str(workdir / "config.yaml")
    cmd = snakemake_command(workdir, "--configfile", config_file, "--cores", str(cores), "-q")
    took = timed(cmd)
    print(f"emodb_cnn.yaml through the workflow, {cores} cores: {took:.0f} s")
    for run in (f"logmel-{name}" for name in runs):
        m = json.loads((workdir / f"results/emodb/runs/{run}/metrics.json").read_text())
        uar, acc = m["uar_ci95"], m["accuracy_ci95"]
        print(
            f"  {run:20s} LOSO UAR {m['uar']:.3f} [{uar[0]:.3f}, {uar[1]:.3f}]"
            f"  accuracy {m['accuracy']:.3f} [{acc[0]:.3f}, {acc[1]:.3f}]  folds {m['n_folds']}"
        )


def stall(workdir: Path, epochs: int) -> None:
    import numpy as np
    import pandas as pd
    import torch

    from serflow.evaluation.protocols import score
    from serflow.models.cnn import LogMelCNN

    class SoftmaxBeforeLoss(LogMelCNN):
        """Seed 002's slip: a softmax layer at the end, then CrossEntropyLoss (which applies
        log-softmax itself) on those probabilities."""

        def _build(self, torch, n_dims):
            net = super()._build(torch, n_dims)

            class Probabilities(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.net = net

                def forward(self, x, lengths):
                    return torch.softmax(self.net(x, lengths), dim=1)

            return Probabilities()

    table = pd.read_parquet(workdir / "results/emodb/features/logmel.parquet")
    columns = [c for c in table.columns if c.startswith("frames_mel")]
    x = table[columns].to_numpy(dtype=np.float64)
    labels = sorted(table["label"].unique())
    y = table["label"].map({lab: i for i, lab in enumerate(labels)}).to_numpy()
    test = (table["speaker"] == "03").to_numpy()
    seed002 = yaml.safe_load(RECIPE.read_text())["models"]["cnn_seed002"]["params"]
    fixed = {**seed002, "max_epochs": epochs, "patience": epochs, "validation_fraction": 0.0}
    variants = {
        "logits, SGD lr 0.01 (serflow)": (LogMelCNN, {}),
        "softmax then CE, SGD lr 0.01 (seed 002, 3.1)": (SoftmaxBeforeLoss, {}),
        "softmax then CE, Adam lr 1e-4 (seed 002, 3.2)": (
            SoftmaxBeforeLoss,
            {"optimizer": "adam", "learning_rate": 1e-4},
        ),
    }
    torch.set_num_threads(1)
    print(f"\nseed 002's network, one LOSO fold (test speaker 03, {int(test.sum())} clips), {epochs} epochs:")
    for name, (cls, change) in variants.items():
        start = time.perf_counter()
        model = cls(**{**fixed, **change}).fit(x[~test], y[~test])
        took = time.perf_counter() - start
        losses = [h["train_loss"] for h in model.history_]
        uar = score(y[test], model.predict(x[test]), labels, n_boot=10)["uar"]
        shown = " ".join(f"{v:.3f}" for v in losses[:: max(1, len(losses) // 10)])
        print(f"  {name:48s} loss {shown}  held-out UAR {uar:.3f}  ({took:.0f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/serflow-bench-cnn"))
    ap.add_argument("--skip-workflow", action="store_true", help="reuse the workdir's table")
    ap.add_argument("--runs", nargs="+", default=["cnn", "cnn_seed002"], help="models of the recipe to run")
    ap.add_argument("--pad-frames", type=int, help="instead of the recipe's 256 (also the models' n_frames)")
    ap.add_argument("--skip-stall", action="store_true", help="skip part 2")
    ap.add_argument("--epochs", type=int, default=30, help="epochs of each variant in part 2")
    args = ap.parse_args()
    if not args.skip_workflow:
        workflow(args.workdir, args.cores, args.runs, args.pad_frames)
    if not args.skip_stall:
        stall(args.workdir, args.epochs)


if __name__ == "__main__":
    main()
