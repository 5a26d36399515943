"""Leave-one-speaker-out accuracy on all of EmoDB, in process, with the workflow's own code.

Features come from ``serflow.features.FeatureSpec.extract`` (one process, one thread) and
are cached per extractor cache key in ``--cache``; each configuration is then evaluated
with ``serflow.models.training.evaluate_run``, the function the workflow's ``train`` rule calls:
scaling, class weights and every grid search are fitted inside the training folds
(inner folds grouped by speaker), and speaker normalisation uses no labels.
Prints pooled LOSO UAR [95% bootstrap CI], accuracy and macro-F1 per configuration.

    python bench/accuracy_emodb.py                      # every configuration
    python bench/accuracy_emodb.py --only base_logreg ext_svc_spk
    python bench/accuracy_emodb.py --list
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from benchlib import REPO

COMPARE = ("mean", "std", "min", "max", "range", "slope", "iqr", "skew", "kurtosis")
COMPARE += ("p1", "p5", "p10", "p25", "p50", "p75", "p90", "p95", "p99")
BASE = {"n_mels": 64, "functionals": COMPARE}
EXTENDED = {**BASE, "extended": True}
#: The extended librosa columns, then openSMILE's eGeMAPSv02 and ComParE_2016 functionals.
SMILE = {**EXTENDED, "opensmile": ["eGeMAPSv02", "ComParE_2016"]}
#: 1e-4 .. 10 in half decades (10 ** (k / 2) rounded to 6 decimals)
LOGREG_C = [0.0001, 0.000316, 0.001, 0.003162, 0.01, 0.031623, 0.1, 0.316228, 1.0, 3.162278, 10.0]
SVC_C = [1.0, 3.0, 10.0, 30.0, 100.0]
SVC_M = [0.25, 0.5, 1.0, 2.0]  # gamma = m / n_features


def logreg(c=LOGREG_C, speaker_norm=False):
    return {
        "kind": "logreg",
        "class_weight": "balanced",
        "grid": {"C": list(c)},
        "speaker_norm": speaker_norm,
    }


def svc_rbf(speaker_norm=True):
    # gamma depends on the number of columns: filled in by ``resolve_model``.
    return {"kind": "svc", "class_weight": "balanced", "speaker_norm": speaker_norm, "rbf_grid": True}


def svc_linear(speaker_norm=True, c=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1)):
    return {
        "kind": "svc",
        "class_weight": "balanced",
        "speaker_norm": speaker_norm,
        "params": {"kernel": "linear"},
        "grid": {"C": list(c)},
    }


#: Every librosa group of the extended extractor.
GROUPS_EXT = ["prosody", "mfcc", "mfcc_deltas", "spectral", "mel"]
GROUPS_EXT += ["spectral_shape", "spectral_deltas", "voice_quality", "prosody_dynamics", "rhythm"]
#: name -> (feature parameters, feature groups, model config, inner_splits)
CONFIGS = {
    # (a) config/recipes/emodb_best.yaml before issue 4's extended descriptors
    "base_logreg": (BASE, ["all"], logreg([0.001, 0.01, 0.1, 1.0]), 3),
    "base_logreg_spk": (BASE, ["all"], logreg([0.001, 0.01, 0.1, 1.0], True), 3),
    "base_svc_spk": (
        BASE,
        ["all"],
        {"kind": "svc", "class_weight": "balanced", "speaker_norm": True, "grid": {"C": [1.0, 10.0, 100.0]}},
        3,
    ),
    # (b), (c) extended descriptors, LogReg over C 1e-4..10
    "ext_logreg": (EXTENDED, ["all"], logreg(), 3),
    "ext_logreg_spk": (EXTENDED, ["all"], logreg(speaker_norm=True), 3),
    "ext_logreg_in9": (EXTENDED, ["all"], logreg(), 9),
    "ext_logreg_spk_in9": (EXTENDED, ["all"], logreg(speaker_norm=True), 9),
    # (d) RBF SVC, C x gamma chosen by inner leave-one-speaker-out
    "ext_svc_spk": (EXTENDED, ["all"], svc_rbf(), 9),
    "ext_svc": (EXTENDED, ["all"], svc_rbf(speaker_norm=False), 9),
    "ext_svc_spk_in3": (EXTENDED, ["all"], svc_rbf(), 3),
    "ext_svc_in3": (EXTENDED, ["all"], svc_rbf(speaker_norm=False), 3),
    "ext_linsvc_spk": (EXTENDED, ["all"], svc_linear(), 3),
    "ext_linsvc": (EXTENDED, ["all"], svc_linear(speaker_norm=False), 3),
    # cheap variations
    "ext20_logreg": ({**EXTENDED, "n_mfcc": 20}, ["all"], logreg(), 3),
    "ext20_logreg_spk": ({**EXTENDED, "n_mfcc": 20}, ["all"], logreg(speaker_norm=True), 3),
    "ext20_svc_spk": ({**EXTENDED, "n_mfcc": 20}, ["all"], svc_rbf(), 9),
    "ext30_logreg": ({**EXTENDED, "n_mfcc": 30}, ["all"], logreg(), 3),
    "ext30_svc_spk": ({**EXTENDED, "n_mfcc": 30}, ["all"], svc_rbf(), 9),
    "ext_nomel_logreg": (
        EXTENDED,
        ["prosody", "mfcc", "mfcc_deltas", "spectral", "spectral_shape", "spectral_deltas"]
        + ["voice_quality", "prosody_dynamics", "rhythm"],
        logreg(),
        3,
    ),
    # openSMILE functionals: the anchors, then beside the librosa columns
    "egemaps_svc": (SMILE, ["egemaps"], svc_rbf(speaker_norm=False), 3),
    "egemaps_svc_spk": (SMILE, ["egemaps"], svc_rbf(), 3),
    "compare_linsvc": (SMILE, ["compare"], svc_linear(False, c=(1e-5, 1e-4, 1e-3, 1e-2, 0.1)), 3),
    "compare_linsvc_spk": (SMILE, ["compare"], svc_linear(True, c=(1e-5, 1e-4, 1e-3, 1e-2, 0.1)), 3),
    "compare_logreg": (SMILE, ["compare"], logreg(), 3),
    "compare_logreg_spk": (SMILE, ["compare"], logreg(speaker_norm=True), 3),
    "ext_egemaps_logreg": (SMILE, [*GROUPS_EXT, "egemaps"], logreg(), 3),
    "ext_compare_logreg": (SMILE, ["all"], logreg(), 3),
    "ext_compare_logreg_spk": (SMILE, ["all"], logreg(speaker_norm=True), 3),
    # the feature set chosen inside the training folds, with C: librosa, ComParE or both
    "pick_logreg": (SMILE, ["all"], {**logreg(), "feature_groups": [GROUPS_EXT, ["compare"], ["all"]]}, 3),
    "pick_logreg_spk": (
        SMILE,
        ["all"],
        {**logreg(speaker_norm=True), "feature_groups": [GROUPS_EXT, ["compare"], ["all"]]},
        3,
    ),
}


def resolve_model(model: dict, n_features: int) -> dict:
    """The model config the workflow would get: an RBF grid with absolute gamma values."""
    model = dict(model)
    if model.pop("rbf_grid", False):
        model["grid"] = {"C": SVC_C, "gamma": [m / n_features for m in SVC_M]}
    return model


def load_features(emodb: Path, spec, cache: Path):
    """(table as the workflow builds it, feature names), extracting once per cache key."""
    import pandas as pd

    from serflow.corpus.adapters import read_entries
    from serflow.corpus.audio import load_audio

    entries = [
        e for e in read_entries({"name": "emodb", "adapter": "emodb", "root": str(emodb)}) if not e.error
    ]
    names = [c for c, _ in spec.columns()]
    path = cache / f"emodb-{spec.cache_key()}.npz"
    if path.exists():
        stored = np.load(path)
        matrix, ids = stored["x"], list(stored["ids"])
        assert ids == [e.id for e in entries]
    else:
        start = time.perf_counter()
        matrix = np.stack([spec.extract(load_audio(e.path, spec.sample_rate)) for e in entries])
        took = time.perf_counter() - start
        print(f"  extracted {len(entries)} clips: {1000 * took / len(entries):.1f} ms/clip", flush=True)
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, x=matrix, ids=np.array([e.id for e in entries]))
    table = pd.DataFrame(
        {
            "id": [e.id for e in entries],
            "label": [e.label for e in entries],
            "speaker": [e.speaker for e in entries],
            "split": "train",
        }
    )
    table = pd.concat([table, pd.DataFrame(matrix, columns=names)], axis=1)
    return table, names


def vote(names, cache: Path) -> None:
    """Pooled LOSO scores of the mean class probabilities of several saved configurations."""
    import pandas as pd

    from serflow.evaluation.protocols import score

    runs = [pd.read_csv(cache / f"predictions-{name}.csv") for name in names]
    first = runs[0]
    labels = [c.removeprefix("proba_") for c in first.columns if c.startswith("proba_")]
    proba = np.mean([r[[f"proba_{lab}" for lab in labels]].to_numpy() for r in runs], axis=0)
    assert all((r["id"] == first["id"]).all() for r in runs)
    y = first["label"].map({lab: i for i, lab in enumerate(labels)}).to_numpy()
    m = score(y, proba.argmax(axis=1), labels)
    ci = m["uar_ci95"]
    print(
        f"vote {' + '.join(names)}: UAR {m['uar']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]  "
        f"acc {m['accuracy']:.3f}  F1 {m['macro_f1']:.3f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--emodb", type=Path, default=REPO.parent / "shared" / "data" / "emodb" / "wav")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/serflow-accuracy"))
    ap.add_argument("--only", nargs="+", choices=sorted(CONFIGS), help="configurations to run")
    ap.add_argument("--list", action="store_true", help="list the configurations and exit")
    ap.add_argument(
        "--vote",
        nargs="+",
        metavar="NAME",
        help="soft voting: average the out-of-fold probabilities saved by earlier runs of these",
    )
    args = ap.parse_args()
    if args.list:
        for name, (feat, groups, model, inner) in CONFIGS.items():
            print(f"{name:<20} features={feat} groups={groups} model={model} inner_splits={inner}")
        return
    from serflow.features import FeatureSpec, select_columns
    from serflow.models.training import dumps_metrics, evaluate_run
    from serflow.runtime import limit_threads

    limit_threads(1)
    if args.vote:
        return vote(args.vote, args.cache)
    if not args.emodb.is_dir():
        sys.exit(f"EmoDB not found at {args.emodb}")
    rows = []
    for name in args.only or list(CONFIGS):
        feat, groups, model, inner = CONFIGS[name]
        spec = FeatureSpec.from_config(feat)
        table, names = load_features(args.emodb, spec, args.cache)
        columns = select_columns(dict(spec.columns()), groups)
        table.attrs["column_groups"] = dict(spec.columns())
        model = resolve_model(model, len(columns))
        start = time.perf_counter()
        pred, m = evaluate_run(table, columns, model, {"protocol": "loso", "inner_splits": inner})
        took = time.perf_counter() - start
        pred.to_csv(args.cache / f"predictions-{name}.csv", index=False)
        (args.cache / f"metrics-{name}.json").write_text(dumps_metrics(m))
        chosen = sorted({str(f["params"]) for f in m["folds"]})
        rows.append((name, len(columns), m, took))
        ci = m["uar_ci95"]
        print(
            f"{name:<20} {len(columns):>5} cols  UAR {m['uar']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]  "
            f"acc {m['accuracy']:.3f}  F1 {m['macro_f1']:.3f}  {took:6.0f} s  chosen {chosen}",
            flush=True,
        )
    print("\n| configuration | features | UAR [95% CI] | accuracy | macro-F1 | time (s) |")
    print("|---|---|---|---|---|---|")
    for name, n, m, took in rows:
        ci = m["uar_ci95"]
        print(
            f"| {name} | {n} | {m['uar']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] | {m['accuracy']:.3f} | "
            f"{m['macro_f1']:.3f} | {took:.0f} |"
        )


if __name__ == "__main__":
    main()
