"""What is left for test-domain normalisation: variants of it, and the per-speaker ceiling.

Reads runs of ``bench_pseudo_speakers.py`` (the ``domain`` config's ``all`` feature table and
estimated groups, per held-out speaker set and layout), rebuilds the answer key from EmoDB
as that bench names the clips, and scores on the hidden test split, with LogReg (C 0.1,
balanced classes, as ``logreg_dn``) on the ``all`` features:

  plain          training statistics for both splits (``all-logreg``)
  domain_norm    each split with its own statistics (``all-logreg_dn``, what the workflow does)
  balanced       the same, each split's statistics weighted to equal classes (the test
                 split's weights from the model's own predictions, five rounds)
  mean_only      each split's own mean, the training split's spread
  C=0.01, C=0.3  domain_norm with another regularisation
  self_train     domain_norm, refitted with the confident half of the test split's predictions
  est_groups     each estimated group (``speakers.parquet``) with its own statistics
  est_means      domain_norm, then each estimated group's mean offset removed, shrunk by
                 n / (n + 20) for a group of n clips
  est_means_off  the same, removing only the offsets' part outside the span of the training
                 emotion centroids (so that a group's emotion mix is not taken for its voice)
  true_speakers  each true speaker with its own statistics: the ceiling speaker ids would give

With ``--ensemble`` it instead runs the workflow's own cross-validation and refit
(``serflow.models.training.evaluate_run`` and ``fit_final``, the runs' evaluation settings) of
``logreg_dn``, ``svc_dn`` and a soft vote of the two (scikit-learn's ``VotingClassifier``,
registered here as a model kind, not in the library), and reports each one's CV and hidden
UAR and what choosing among the three by CV gives.

    python bench/bench_domain_norm_ceiling.py 10,13,16=/tmp/pb0 03,09,11=/tmp/pb1/split-03-09-11 ...
"""

from __future__ import annotations

import argparse
from pathlib import Path
from statistics import fmean

import numpy as np
import pandas as pd
from bench_pseudo_speakers import DOMAIN_MODELS
from benchlib import EMODB
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from threadpoolctl import threadpool_limits

from serflow.corpus.adapters import EMODB_EMOTIONS

LAYOUTS = {  # dataset name, then the clip ids bench_pseudo_speakers.build_layouts gives
    "seed003": ("dacon", lambda split, i: f"{split.upper()}_{i:04d}"),
    "seed000": ("kaggle", lambda split, i: f"{split}_{i:04d}.wav"),
}
META = ("id", "label", "speaker", "split", "stratum")


def scaled(x: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Columns to zero mean and unit spread, optionally weighted (constant columns to 0)."""
    w = np.full(len(x), 1.0 / len(x)) if weights is None else weights / weights.sum()
    mean = w @ x
    std = np.sqrt(w @ (x - mean) ** 2)
    return (x - mean) / np.where(std > 0, std, 1.0)


def per_group(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    for g in np.unique(groups):
        out[groups == g] = scaled(x[groups == g])
    return out


def without_group_means(x: np.ndarray, groups: np.ndarray, keep: np.ndarray, shrink: float = 20.0):
    """``x`` (centred) less each group's mean, its part along the rows of ``keep`` kept."""
    out = x.copy()
    for g in np.unique(groups):
        rows = groups == g
        offset = x[rows].mean(0)
        offset -= keep.T @ (keep @ offset)
        out[rows] -= offset * rows.sum() / (rows.sum() + shrink)
    return out


def logreg(x, y, C=0.1):
    return LogisticRegression(C=C, class_weight="balanced", max_iter=2000).fit(x, y)


def answer_key(layout: str, test_speakers: list[str]) -> dict:
    """Clip id -> (emotion, true speaker), both splits."""
    name = LAYOUTS[layout][1]
    clips = sorted(EMODB.glob("*.wav"))
    out = {}
    for split, keep in (("train", False), ("test", True)):
        items = [p for p in clips if (p.name[:2] in test_speakers) == keep]
        out |= {name(split, i): (EMODB_EMOTIONS[p.name[5]], p.name[:2]) for i, p in enumerate(items)}
    return out


def variants(run: Path, layout: str, test_speakers: list[str]) -> dict:
    dataset = LAYOUTS[layout][0]
    table = pd.read_parquet(run / "results" / dataset / "features" / "all.parquet")
    groups = pd.read_parquet(run / "results" / dataset / "speakers.parquet").set_index("id")["speaker"]
    key = answer_key(layout, test_speakers)
    missing = set(table["id"]) - set(key)
    if missing:
        raise SystemExit(f"{run}: {len(missing)} clip ids not in the answer key rebuilt for {test_speakers}")
    cols = [c for c in table.columns if c not in META]
    train, test = table[table["label"].notna()], table[table["label"].isna()]
    labels = sorted(train["label"].unique())
    code = {lab: i for i, lab in enumerate(labels)}
    y_train = train["label"].map(code).to_numpy()
    y_test = np.array([code[key[i][0]] for i in test["id"]])
    a, b = train[cols].to_numpy(float), test[cols].to_numpy(float)

    def uar(model, x):
        return float(balanced_accuracy_score(y_test, model.predict(x)))

    out = {}
    mean, std = a.mean(0), a.std(0)
    std[std == 0] = 1.0
    out["plain"] = uar(logreg((a - mean) / std, y_train), (b - mean) / std)
    dn = logreg(scaled(a), y_train)
    out["domain_norm"] = uar(dn, scaled(b))
    balanced = logreg(scaled(a, 1.0 / np.bincount(y_train)[y_train]), y_train)
    proba = balanced.predict_proba(scaled(b))
    for _ in range(5):
        proba = balanced.predict_proba(scaled(b, (proba / proba.mean(0)).sum(1)))
    out["balanced"] = float(balanced_accuracy_score(y_test, proba.argmax(1)))
    out["mean_only"] = uar(logreg((a - a.mean(0)) / std, y_train), (b - b.mean(0)) / std)
    for C in (0.01, 0.3):
        out[f"C={C}"] = uar(logreg(scaled(a), y_train, C), scaled(b))
    proba = dn.predict_proba(scaled(b))
    sure = proba.max(1) >= np.median(proba.max(1))
    out["self_train"] = uar(
        logreg(np.vstack([scaled(a), scaled(b)[sure]]), np.concatenate([y_train, proba.argmax(1)[sure]])),
        scaled(b),
    )
    est = [groups[i] for i in train["id"]], [groups[i] for i in test["id"]]
    out["est_groups"] = uar(logreg(per_group(a, np.array(est[0])), y_train), per_group(b, np.array(est[1])))
    centroids = np.stack([scaled(a)[y_train == c].mean(0) for c in range(len(labels))])
    span = np.linalg.qr((centroids - centroids.mean(0)).T)[0].T  # orthonormal rows
    for name, keep in (("est_means", np.zeros((0, a.shape[1]))), ("est_means_off", span)):
        x_a = without_group_means(scaled(a), np.array(est[0]), keep)
        out[name] = uar(logreg(x_a, y_train), without_group_means(scaled(b), np.array(est[1]), keep))
    true = np.array([key[i][1] for i in train["id"]]), np.array([key[i][1] for i in test["id"]])
    out["true_speakers"] = uar(logreg(per_group(a, true[0]), y_train), per_group(b, true[1]))
    return out


DN_MODELS = {
    **DOMAIN_MODELS,
    "vote_dn": {
        "kind": "soft_vote",
        "params": {"members": {m["kind"]: m["params"] for m in DOMAIN_MODELS.values()}},
        "class_weight": "balanced",
        "domain_norm": True,
    },
}


def register_soft_vote() -> None:
    """A ``soft_vote`` model kind: the mean of its members' class probabilities."""
    from sklearn.ensemble import VotingClassifier

    from serflow.models.kinds import ModelKind, make_estimator, register_model_kind

    def make(params, threads):
        params = dict(params)
        balance = {"class_weight": params.pop("class_weight")} if "class_weight" in params else {}
        seed = params.pop("random_state", 0)
        members = [
            (kind, make_estimator(kind, {**(p or {}), **balance}, threads, seed))
            for kind, p in params.pop("members").items()
        ]
        return VotingClassifier(members, voting="soft", **params)

    register_model_kind(ModelKind("soft_vote", make, seeded=True, class_weight="param"))


def ensemble(run: Path, layout: str, test_speakers: list[str]) -> dict:
    """Name -> (CV UAR, hidden UAR) of ``DN_MODELS`` through the workflow's own training code."""
    import json

    from serflow.models.training import evaluate_run, fit_final, load_table

    dataset = LAYOUTS[layout][0]
    results = run / "results" / dataset
    table, columns = load_table(results / "features" / "all.parquet")
    evaluation = json.loads((results / "runs" / "all-logreg_dn" / "metrics.json").read_text())["evaluation"]
    key = answer_key(layout, test_speakers)
    out = {}
    for name, model in DN_MODELS.items():
        _, metrics = evaluate_run(table, columns, model, evaluation)
        _, pred = fit_final(table, columns, model, evaluation)
        hidden = balanced_accuracy_score([key[i][0] for i in pred["id"]], pred["prediction"])
        out[name] = (metrics["uar"], float(hidden))
    return out


def each_run(args, measure, show) -> dict:
    """(held-out set, layout) -> ``measure(run folder, layout, test speakers)``, each printed."""
    rows = {}
    with threadpool_limits(limits=1):
        for item in args.runs:
            speakers, folder = item.split("=", 1)
            for layout in args.layouts:
                out = measure(Path(folder) / f"{layout}-domain", layout, speakers.split(","))
                rows[speakers, layout] = out
                print(speakers, layout, " ".join(f"{k} {show(v)}" for k, v in out.items()), flush=True)
    return rows


def main_ensemble(args) -> None:
    register_soft_vote()
    rows = each_run(args, ensemble, lambda v: f"{v[0]:.3f}/{v[1]:.3f}")
    print(f"\nmean over {len(args.runs)} held-out sets: CV UAR / hidden UAR")
    for layout in args.layouts:
        sel = [r for (_, lay), r in rows.items() if lay == layout]
        means = {k: (fmean(r[k][0] for r in sel), fmean(r[k][1] for r in sel)) for k in DN_MODELS}
        picked = [max(DN_MODELS, key=lambda k: r[k][0]) for r in sel]
        print(layout, " ".join(f"{k} {cv:.3f}/{h:.3f}" for k, (cv, h) in means.items()))
        hidden = fmean(r[k][1] for r, k in zip(sel, picked))
        print(f"  chosen by CV among the three: hidden {hidden:.3f} ({', '.join(picked)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="SPEAKERS=DIR: a held-out set and its bench folder")
    ap.add_argument("--layouts", nargs="+", default=list(LAYOUTS))
    ap.add_argument(
        "--ensemble", action="store_true", help="logreg_dn, svc_dn and their soft vote, CV and hidden"
    )
    args = ap.parse_args()
    if args.ensemble:
        return main_ensemble(args)
    rows = each_run(args, variants, lambda v: f"{v:.3f}")

    def mean_of(name):
        return [fmean(r[name] for (_, lay), r in rows.items() if lay == layout) for layout in args.layouts]

    print(f"\nhidden UAR, mean over {len(args.runs)} held-out sets (LogReg C 0.1 on `all`)")
    print(f"{'variant':15}" + "".join(f"{lay:>10}" for lay in args.layouts) + "   vs domain_norm")
    for name in next(iter(rows.values())):
        means, ref = mean_of(name), mean_of("domain_norm")
        print(
            f"{name:15}" + "".join(f"{m:10.3f}" for m in means) + "   "
            + " / ".join(f"{m - r:+.3f}" for m, r in zip(means, ref))
        )  # fmt: skip


if __name__ == "__main__":
    main()
