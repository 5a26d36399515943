"""Late fusion: a run made of other runs' class probabilities, over the same folds.

For each outer fold the combiner is fitted on the training folds' clips only, from the
out-of-fold probabilities the base runs gave them (never on the fold's own clips or labels):

- ``mean``: the average of the base runs' probabilities (nothing fitted);
- ``weighted``: an average weighted by each base run's UAR on the training folds' clips;
- ``stacked``: a multinomial logistic regression (balanced class weights) on the base runs'
  probabilities side by side (Wolpert 1992; Ting & Witten 1999).

The base probabilities of training clips come from base models whose own training held
other folds, the fold's clips among them: the usual stacking on out-of-fold predictions.
The refitted combiner (fitted on every clip's out-of-fold probabilities) applies to the
base runs' refitted models, for test clips and ``serflow predict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

METHODS = ("mean", "weighted", "stacked")


def _uar(y, proba) -> float:
    pred = proba.argmax(axis=1)
    present = np.unique(y)
    return float(np.mean([np.mean(pred[y == c] == c) for c in present]))


@dataclass
class Combiner:
    """How the base runs' probabilities (a list, one n x labels array per run) become one."""

    method: str
    n_labels: int
    weights: np.ndarray | None = None
    stacker: object = field(default=None, repr=False)

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"fusion method must be one of {', '.join(METHODS)}, not {self.method!r}")

    def fit(self, probas: list[np.ndarray], y: np.ndarray) -> Combiner:
        n_runs = len(probas)
        if self.method == "weighted":
            scores = np.array([_uar(y, p) for p in probas])
            self.weights = scores / scores.sum() if scores.sum() > 0 else np.full(n_runs, 1 / n_runs)
        elif self.method == "stacked":
            from sklearn.linear_model import LogisticRegression

            self.stacker = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit(
                np.hstack(probas), y
            )
        else:
            self.weights = np.full(n_runs, 1 / n_runs)
        return self

    def predict_proba(self, probas: list[np.ndarray]) -> np.ndarray:
        if self.method != "stacked":
            return np.tensordot(self.weights, np.stack(probas), axes=1)
        out = np.zeros((len(probas[0]), self.n_labels))
        out[:, self.stacker.classes_] = self.stacker.predict_proba(np.hstack(probas))
        return out

    def describe(self) -> dict:
        """What a fold's combiner chose (its ``params`` in metrics.json)."""
        if self.method == "stacked":
            return {"method": "stacked"}
        return {"method": self.method, "weights": [round(float(w), 6) for w in self.weights]}


def _proba(predictions, labels) -> np.ndarray:
    return predictions[[f"proba_{lab}" for lab in labels]].to_numpy(dtype=np.float64)


def _common_ids(frames: dict, what: str):
    """The ids every frame holds, in the first one's order (an extractor can drop a clip from
    one run's table and not another's); ValueError when none is shared."""
    names = list(frames)
    ids = frames[names[0]]["id"].astype(str)
    for name in names[1:]:
        ids = ids[ids.isin(set(frames[name]["id"].astype(str)))]
    if not len(ids) and any(len(f) for f in frames.values()):
        raise ValueError(f"the {what} of runs {', '.join(names)} share no clip: nothing to fuse")
    return ids.to_numpy()


def _rows(frame, ids):
    """``frame``'s rows of ``ids`` (strings), in that order, indexed by id."""
    return frame.assign(id=frame["id"].astype(str)).set_index("id").loc[ids]


def _method(method: str, folds) -> str:
    """The combiner a fusion over ``folds`` can fit: with one fold there is nothing to fit
    one on but the fold itself, so it is the mean."""
    return method if len(np.unique(folds)) > 1 else "mean"


def aligned(runs: dict, facts: dict) -> tuple:
    """The base runs' out-of-fold predictions on the same clips in the same order, checked:
    the same labels and the same fold of every clip."""
    names = list(runs)
    labels = facts[names[0]]["labels"]
    for name in names[1:]:
        if facts[name]["labels"] != labels:
            raise ValueError(f"runs {names[0]} and {name} predict different labels: fusion needs the same")
    ids = _common_ids(runs, "out-of-fold predictions")
    frames = {n: _rows(runs[n], ids) for n in names}
    for name in names[1:]:
        if not (frames[name]["fold"].to_numpy() == frames[names[0]]["fold"].to_numpy()).all():
            raise ValueError(
                f"runs {names[0]} and {name} were evaluated on different folds: fuse runs of one protocol"
            )
    return frames, labels


def fuse_runs(runs: dict, facts: dict, method: str):
    """Out-of-fold predictions (DataFrame) and facts (dict, as ``training.gather_run``'s) of
    the fusion of ``runs`` (run -> its out-of-fold predictions; ``facts``: run -> its cv.json)."""
    import pandas as pd

    frames, labels = aligned(runs, facts)
    names = list(frames)
    base = frames[names[0]]
    code = {lab: i for i, lab in enumerate(labels)}
    y = base["label"].astype(str).map(code).to_numpy()
    folds = base["fold"].to_numpy()
    probas = [_proba(frames[n], labels) for n in names]
    fused = np.zeros_like(probas[0])
    params = {}
    effective = _method(method, folds)
    for k in np.unique(folds):
        test, train = folds == k, folds != k
        combiner = Combiner(effective, len(labels)).fit([p[train] for p in probas], y[train])
        fused[test] = combiner.predict_proba([p[test] for p in probas])
        params[int(k)] = combiner.describe()
    predictions = pd.DataFrame(
        {
            "id": base.index.astype(str),
            "speaker": base["speaker"].to_numpy(),
            "label": base["label"].astype(str).to_numpy(),
            "fold": folds,
            "prediction": [labels[i] for i in fused.argmax(axis=1)],
        }
    )
    for i, lab in enumerate(labels):
        predictions[f"proba_{lab}"] = fused[:, i]
    first = facts[names[0]]
    norms = ", ".join(f"{n}: {facts[n]['speaker_norm']}" for n in names)
    out = {
        k: first[k]
        for k in (
            "protocol",
            "speaker_independent",
            "n_folds",
            "n_speakers",
            "speakers",
            "labels",
            "evaluation",
        )
    }
    out.update(
        n_clips=len(predictions),
        n_features=int(sum(facts[n]["n_features"] for n in names)),
        speaker_norm=f"as each fused run ({norms})",
        # the first run's folds, less its training counts (the fusion trains on no copies itself)
        folds=[
            {**{k: v for k, v in f.items() if k != "train_per_label"}, "params": params.get(f["fold"], {})}
            for f in first["folds"]
        ],
        model={
            "kind": "fusion",
            "runs": names,
            "method": effective,
            "params": {"method": effective, "runs": names},
            "grid": {},
            "class_weight": None,
            "speaker_norm": False,
        },
    )
    return predictions, out


def final_combiner(runs: dict, facts: dict, method: str) -> Combiner:
    """The combiner fitted on every clip's out-of-fold probabilities (for the refitted runs)."""
    frames, labels = aligned(runs, facts)
    names = list(frames)
    method = _method(method, frames[names[0]]["fold"])  # as the folds' combiners: what was scored
    y = frames[names[0]]["label"].astype(str).map({lab: i for i, lab in enumerate(labels)}).to_numpy()
    return Combiner(method, len(labels)).fit([_proba(frames[n], labels) for n in names], y)


def fuse_test(tests: dict, combiner: Combiner, labels) -> object:
    """Fused test predictions from the base runs' test predictions, for the clips all of them
    predicted (a clip one run lacks gets none, and the submission says so)."""
    import pandas as pd

    names = list(tests)
    ids = _common_ids(tests, "test predictions")
    probas = [_proba(_rows(tests[n], ids), labels) for n in names]
    fused = combiner.predict_proba(probas) if len(ids) else np.zeros((0, len(labels)))
    out = pd.DataFrame({"id": ids, "prediction": [labels[i] for i in fused.argmax(axis=1)]})
    for i, lab in enumerate(labels):
        out[f"proba_{lab}"] = fused[:, i]
    return out


def fusion_bundle(
    runs: list[str], method: str, combiner: Combiner, labels, first_bundle: dict, info=None
) -> dict:
    """What a fusion run saves as its ``model.joblib``: the combiner and the names of the runs
    it combines (their own models are read from the sibling run folders)."""
    from serflow.features.tables import package_versions
    from serflow.models.training import MODEL_PACKAGES

    return {
        "kind": "fusion",
        "fusion": {"runs": list(runs), "method": method, "combiner": combiner},
        "model": combiner,
        "labels": list(labels),
        "feature_names": [],
        "training": first_bundle.get("training", {}),
        "chosen_params": combiner.describe(),
        "importance": None,
        "versions": package_versions(MODEL_PACKAGES),
        **(info or {}),
    }
