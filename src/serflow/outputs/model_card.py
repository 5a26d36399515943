"""``model_card.md``: what a saved model was trained on, how well it did, and where it stops holding."""

from __future__ import annotations

import json

from serflow.models.normalisation import Normalisation
from serflow.outputs.runs import TRUST, normalisation, trust


def _interval(metrics: dict, key: str) -> str:
    low, high = metrics.get(f"{key}_ci95") or (None, None)
    ci = f" [{low:.3f}, {high:.3f}]" if low is not None else ""
    return f"{metrics[key]:.3f}{ci}"


def _new_clips(norm: Normalisation) -> str:
    parts = []
    if norm.speaker:
        parts.append(
            "each speaker's clips are standardised with that speaker's statistics; at prediction time give "
            "several clips per speaker (`serflow predict` needs 5 by default) or accept global scaling"
        )
    if norm.domain:
        parts.append(
            "the clips of one call are standardised together as one test domain (at least 5 of them,"
            " else with the training statistics)"
        )
    return ("; then ".join(parts) or "none") + "."


def _per_label_table(per_label: dict, training: dict, model: dict) -> list[str]:
    # (bundles before augmentation existed name the resampled counts clips_per_label_resampled)
    after = training.get("clips_per_label_fitted") or training.get("clips_per_label_resampled")
    if not after:
        return ["| label | clips |", "|---|---|", *(f"| {lab} | {n} |" for lab, n in per_label.items())]
    copies = training.get("copies_per_label") or {}
    how = []
    if model.get("augment"):
        aug = model["augment"]
        names = ", ".join(t["name"] for t in aug["transforms"])
        how.append(
            f"{sum(copies.values())} augmented copies (`{aug['name']}`: {names}) of training clips added"
        )
    if model.get("resample"):
        how.append(f"resampled with `{model['resample']['method']}` (imbalanced-learn)")
    text = "; then ".join(how)
    levers = " and ".join(
        n for n, k in (("augmentation", "augment"), ("resampling", "resample")) if model.get(k)
    )
    return [
        f"{text[0].upper()}{text[1:]} before fitting; the clips scored were never augmented or resampled.",
        "",
        f"| label | clips | after {levers} |",
        "|---|---|---|",
        *(f"| {lab} | {n} | {after.get(lab, n)} |" for lab, n in per_label.items()),
    ]


def fusion_card(bundle: dict, metrics: dict) -> str:
    """The model card of a fusion run: what it combines and how, and its scores."""
    spec, labels = bundle["fusion"], bundle["labels"]
    run, dataset = metrics.get("run", "?"), metrics.get("dataset", bundle.get("dataset", "?"))
    chosen = bundle.get("chosen_params") or {}
    weights = chosen.get("weights")
    how = {
        "mean": "the mean of their class probabilities",
        "weighted": "their class probabilities averaged, weighted by each run's UAR on the training folds",
        "stacked": "a logistic regression (balanced class weights) on their class probabilities side by side",
    }[spec["method"]]
    lines = [
        f"# Model card: {dataset} / {run}",
        "",
        "## Model",
        f"- Late fusion of {len(spec['runs'])} runs of `{dataset}`: {how}.",
        *(
            f"- `{r}`" + (f": weight {w:.3f}" if weights else "") + f" (its card: `../{r}/model_card.md`)"
            for r, w in zip(spec["runs"], weights or [None] * len(spec["runs"]))
        ),
        "- In cross-validation each fold's combiner was fitted on the training folds' clips only"
        " (their out-of-fold probabilities); the saved one on every clip's, applied to the runs'"
        " refitted models.",
        "- Probability columns, in order: " + ", ".join(f"`proba_{lab}`" for lab in labels) + ".",
        "- New clips are normalised as each fused run normalises them; `serflow predict` reads the runs'"
        " models from the sibling run folders.",
        "",
        "## Evaluation",
        f"- Protocol `{metrics['protocol']}`, {metrics['n_folds']} folds: {TRUST[trust(metrics)][1]}.",
        f"- UAR {_interval(metrics, 'uar')}, accuracy {_interval(metrics, 'accuracy')}, "
        f"macro-F1 {metrics['macro_f1']:.3f} (95% bootstrap intervals over clips).",
        "",
        "## Package versions",
        *(f"- {k} {v}" for k, v in sorted((bundle.get("versions") or {}).items())),
        "",
        "## Limits",
        f"- Those of the runs it combines: trained on `{dataset}` alone, knowing only {', '.join(labels)}.",
    ]
    return "\n".join(lines) + "\n"


def model_card(bundle: dict, metrics: dict) -> str:
    """Markdown text of a run's model card from its saved bundle and its ``metrics.json``."""
    if bundle.get("kind") == "fusion":
        return fusion_card(bundle, metrics)
    training = bundle.get("training", {})
    labels = bundle["labels"]
    run, dataset = metrics.get("run", "?"), metrics.get("dataset", bundle.get("dataset", "?"))
    speakers = training.get("n_speakers", metrics.get("n_speakers"))
    per_label = training.get("clips_per_label") or {
        lab: c["support"] for lab, c in metrics.get("per_class", {}).items()
    }
    level = trust(metrics)
    held = TRUST[level][1]
    if level == "dependent":
        head, _, rest = held.partition(":")
        held = f"**{head}**:{rest}"
    lines = [
        f"# Model card: {dataset} / {run}",
        "",
        "## Training data",
        f"- Dataset `{dataset}`: {training.get('n_clips', metrics.get('n_clips'))} labelled clips, "
        + (
            "speakers unknown (no speaker ids)."
            if not speakers
            else f"{speakers} groups of clips by voice (speakers estimated, `speakers: cluster`)."
            if training.get("speakers", metrics.get("speakers")) == "estimated"
            else f"{speakers} speakers."
        ),
        "",
        *_per_label_table(per_label, training, metrics["model"]),
        "",
        "## Evaluation",
        f"- Protocol `{metrics['protocol']}`, {metrics['n_folds']} folds: {held}.",
        f"- UAR {_interval(metrics, 'uar')}, accuracy {_interval(metrics, 'accuracy')}, "
        f"macro-F1 {metrics['macro_f1']:.3f} (95% bootstrap intervals over clips).",
        f"- Normalisation: {normalisation(metrics)}.",
        "",
        "| label | recall | precision | clips |",
        "|---|---|---|---|",
        *(
            f"| {lab} | {c['recall']:.3f} | {c['precision']:.3f} | {c['support']} |"
            for lab, c in metrics.get("per_class", {}).items()
        ),
        "",
        "## Model",
        f"- Kind `{bundle['kind']}`, chosen parameters `{json.dumps(bundle.get('chosen_params') or {})}`, "
        f"{len(bundle['feature_names'])} features (feature set `{bundle.get('feature_set', '?')}`).",
        "- Probability columns, in order: " + ", ".join(f"`proba_{lab}`" for lab in labels) + ".",
        f"- Normalisation of new clips: {_new_clips(Normalisation.from_bundle(bundle))}",
        "",
        "## Features",
        "Extractor parameters (read from the model by `serflow predict`):",
        "",
        *(
            f"- `{name}`: `{json.dumps(desc['params'], sort_keys=True)}`"
            for name, desc in bundle.get("features", {}).get("extractors", {}).items()
        ),
        "",
        "## Package versions",
        *(f"- {k} {v}" for k, v in sorted((bundle.get("versions") or {}).items())),
        "",
        "## Limits",
        f"- Trained on `{dataset}` alone: its language, speakers, recording conditions and way of "
        "eliciting emotions (acted or natural) bound where these scores hold. On other corpora, "
        "microphones or languages expect lower accuracy.",
        f"- It only knows the labels {', '.join(labels)}: any other state is forced into one of them.",
        "- Scores pool the out-of-fold predictions of every fold; per-speaker scores are in metrics.json.",
    ]
    if level == "dependent":
        lines.append("- The evaluation shares speakers between training and test folds: it is optimistic.")
    return "\n".join(lines) + "\n"
