"""Seed 002's recipe (nine labels merged into four, split stratified by genre) on a small CSV."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, run_snakemake, tone, write_wav

from serflow.evaluation.protocols import make_folds

RECIPE = REPO / "config" / "recipes" / "seed002.yaml"
NINE = [
    *("amazement", "joyful_activation", "sadness", "nostalgia", "calmness"),
    *("tenderness", "solemnity", "power", "tension"),
]
GENRES = ["classical", "rock", "pop", "electronic"]


def test_random_split_stratified_by_stratum():
    y = np.array([0, 1] * 20)
    genre = np.array(["a"] * 10 + ["b"] * 10 + ["c"] * 20, dtype=object)
    ((train, test),) = make_folds(y, protocol="random_split", test_size=0.2, stratify="stratum", strata=genre)
    assert sorted(pd.Series(genre[test]).value_counts().items()) == [("a", 2), ("b", 2), ("c", 4)]
    assert len(train) == 32 and not set(train) & set(test)
    with pytest.raises(ValueError, match="stratify_column"):
        make_folds(y, protocol="random_split", stratify="stratum", strata=[None] * len(y))


def test_seed002_recipe_on_a_small_corpus(tmp_path):
    rows = []
    for g, genre in enumerate(GENRES):
        for k in range(10):
            label = "nostalgia" if k >= 7 else NINE[(3 * g + k) % len(NINE)]  # more than ten sad clips
            name = f"audio/{genre}_{k}.wav"
            write_wav(
                tmp_path / name, tone(110.0 * (1 + NINE.index(label) % 4) + 5 * k, 1.0, sr=22050), sr=22050
            )
            rows.append({"path": name, "label": label, "genre": genre})
    table = tmp_path / "annotations.csv"
    pd.DataFrame(rows).to_csv(table, index=False)

    config = yaml.safe_load(RECIPE.read_text())
    config["datasets"][0]["table"] = str(table)
    config["models"]["mlp_seed002"]["params"]["max_iter"] = 300
    config["models"]["cnn_seed002"]["params"]["max_epochs"] = 3
    run_snakemake(tmp_path, config)

    manifest = pd.read_parquet(tmp_path / "results/emotify/manifest.parquet")
    assert len(manifest) == 40 and set(manifest["label"]) == {"joy", "sadness", "neutral", "anger"}
    assert manifest["stratum"].value_counts().to_dict() == dict.fromkeys(GENRES, 10)
    for run in ("seed002_mel-mlp_seed002", "seed002_mel-logreg_balanced", "seed002_logmel-cnn_seed002"):
        metrics = json.loads((tmp_path / f"results/emotify/runs/{run}/metrics.json").read_text())
        assert metrics["protocol"] == "random_split" and not metrics["speaker_independent"]
        tested = pd.read_parquet(tmp_path / f"results/emotify/runs/{run}/predictions.parquet")
        genre = tested["id"].map(manifest.set_index("id")["stratum"])
        assert genre.value_counts().to_dict() == dict.fromkeys(GENRES, 2)  # 80/20 within every genre

    # ten sadness clips drawn, one augmented copy each; a fold uses those of its training part
    copies = pd.read_parquet(tmp_path / "results/emotify/augmented/sadness10/copies.parquet")
    sad = manifest[manifest["label"] == "sadness"]
    assert len(sad) > 10 and len(copies) == 10 and copies["source"].is_unique
    assert set(copies["source"]) <= set(sad["id"])
    for run in ("seed002_mel-mlp_seed002", "seed002_logmel-cnn_seed002"):
        metrics = json.loads((tmp_path / f"results/emotify/runs/{run}/metrics.json").read_text())
        tested = set(pd.read_parquet(tmp_path / f"results/emotify/runs/{run}/predictions.parquet")["id"])
        (fold,) = metrics["folds"]
        counts, used = fold["train_per_label"], int((~copies["source"].isin(tested)).sum())
        assert counts["copies"] == {"anger": 0, "joy": 0, "neutral": 0, "sadness": used}
        assert counts["after"]["sadness"] == counts["before"]["sadness"] + used
        assert counts["before"]["sadness"] == len(set(sad["id"]) - tested)
    plain = json.loads(
        (tmp_path / "results/emotify/runs/seed002_mel-logreg_balanced/metrics.json").read_text()
    )
    assert "train_per_label" not in plain["folds"][0]
