"""A new extractor and a new model kind, each written in one place and registered from here.

This is the recipe CONTRIBUTING.md describes: the extractor class below is all a new kind
of feature needs in process (the workflow also lists it in ``REGISTRY`` and its groups in
the schema), and a model kind is one ``ModelKind`` entry.
"""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from conftest import tone, write_wav

from serflow.corpus.audio import checksum_bytes
from serflow.features import GROUP_EXTRACTOR, REGISTRY, Clip, Extractor, FeatureSpec, register_extractor
from serflow.features.extraction import extract_shard
from serflow.features.tables import merge_feature_table, write_shard
from serflow.models.kinds import MODEL_KINDS, ModelKind, feature_importance, register_model_kind
from serflow.models.training import evaluate_run


@dataclass(frozen=True)
class PeakLevel(Extractor):
    """Peak and mean frame level in dB over windows of ``window_s`` seconds."""

    name: ClassVar[str] = "peak_level"
    GROUPS: ClassVar[tuple[str, ...]] = ("peak",)

    window_s: float = 0.05

    def check(self):
        if self.window_s <= 0:
            raise ValueError("window_s must be positive")

    def columns(self):
        return [("peak_max_db", "peak"), ("peak_mean_db", "peak")]

    def compute(self, clip: Clip):
        n = max(1, int(self.window_s * clip.sample_rate))
        frames = clip.y[: len(clip.y) // n * n].reshape(-1, n)
        db = 20 * np.log10(np.maximum(np.abs(frames).max(axis=1), 1e-6))
        return np.array([db.max(), db.mean()], dtype=np.float32)


@pytest.fixture
def registered():
    registries = (REGISTRY, GROUP_EXTRACTOR, MODEL_KINDS)
    saved = [dict(r) for r in registries]
    register_extractor(PeakLevel)
    from sklearn.neighbors import NearestCentroid

    class ProbaCentroid(NearestCentroid):
        """Nearest centroid with probabilities from a softmax of negative distances."""

        def predict_proba(self, x):
            d = -((np.asarray(x)[:, None, :] - self.centroids_[None]) ** 2).sum(axis=2)
            e = np.exp(d - d.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)

    register_model_kind(ModelKind("centroid", lambda params, threads: ProbaCentroid(**params)))
    yield
    for registry, before in zip(registries, saved):
        registry.clear()
        registry.update(before)


def test_a_registered_extractor_goes_through_cache_shards_and_tables(registered, tmp_path):
    spec = FeatureSpec.from_config({"peak_level": {"window_s": 0.02}})
    assert spec.names == ["descriptors", "peak_level"] and spec.needs(["peak"]) == ["peak_level"]
    loud, quiet = (
        write_wav(tmp_path / f"{n}.wav", tone(amp=a, seconds=0.5)) for n, a in (("a", 0.9), ("b", 0.1))
    )
    ids, paths = ["a", "b"], [str(loud), str(quiet)]
    sums = [checksum_bytes(p.read_bytes()) for p in (loud, quiet)]
    ext = spec["peak_level"]
    matrix, errors, stats = extract_shard(ext, ids, paths, sums, tmp_path / "cache")
    assert stats.computed == 2 and errors == [None, None]
    assert matrix[0, 0] == pytest.approx(20 * np.log10(0.9), abs=0.5) and matrix[0, 0] - matrix[1, 0] > 15
    assert len(list((tmp_path / "cache" / "peak_level" / ext.cache_key()).rglob("*.npy"))) == 2
    write_shard(tmp_path / "s.parquet", ids, matrix, errors, ext, stats)
    pd.DataFrame({"id": ids, "label": ["x", "y"], "speaker": "s", "split": "train"}).to_parquet(
        tmp_path / "m.parquet"
    )
    table = merge_feature_table(
        tmp_path / "m.parquet", {"peak_level": ([tmp_path / "s.parquet"], ext.names())}, {}
    )
    assert table.column_names[-2:] == ["peak_max_db", "peak_mean_db"]
    with pytest.raises(ValueError, match="window_s must be positive"):
        FeatureSpec.from_config({"peak_level": {"window_s": 0}})


def test_a_registered_model_kind_is_cross_validated(registered):
    rng = np.random.default_rng(0)
    y = np.repeat(["calm", "loud"], 24)
    x = rng.normal(size=(48, 3))
    x[:, :2] += (y == "loud")[:, None] * 2.0  # only the peak columns carry the classes
    table = pd.DataFrame(x, columns=["peak_max_db", "peak_mean_db", "f0_mean"])
    table.insert(0, "id", [f"c{i}" for i in range(48)])
    table.insert(1, "label", y)
    table.insert(2, "speaker", [f"s{i % 4}" for i in range(48)])
    table.insert(3, "split", "train")
    table.attrs["column_groups"] = {"peak_max_db": "peak", "peak_mean_db": "peak", "f0_mean": "prosody"}
    columns = ["peak_max_db", "peak_mean_db", "f0_mean"]
    predictions, metrics = evaluate_run(
        table, columns, {"kind": "centroid", "feature_groups": [["peak"], ["prosody"]], "grid": {}}
    )
    assert metrics["protocol"] == "loso" and metrics["n_folds"] == 4
    assert metrics["uar"] > 0.8
    assert all(f["params"]["feature_groups"] == ["peak"] for f in metrics["folds"])
    assert np.allclose(predictions.filter(like="proba_").sum(axis=1), 1.0)
    from serflow.models.pipeline import fit_model

    assert feature_importance(fit_model("centroid", x, y), "centroid", columns) is None  # no importance trait


def test_the_contributing_adapter_example_lists_a_corpus(tmp_path, monkeypatch):
    """CONTRIBUTING.md's adapter, run as written, lists a RAVDESS-named folder."""
    import re

    from conftest import REPO

    from serflow.corpus import adapters

    text = (REPO / "CONTRIBUTING.md").read_text(encoding="utf-8")
    section = text[text.index("## A corpus adapter") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)[1]
    monkeypatch.setattr(adapters, "ADAPTERS", dict(adapters.ADAPTERS))
    exec(code, vars(adapters).copy())  # the names the module offers; ADAPTERS is the patched copy
    for name in ("03-01-05-01-02-01-12.wav", "03-01-01-01-01-02-07.wav", "notes.wav"):
        write_wav(tmp_path / "Actor" / name, tone(200.0, 0.3))
    entries = {
        e.id: e for e in adapters.read_entries({"name": "r", "adapter": "ravdess", "root": str(tmp_path)})
    }
    assert (entries["03-01-05-01-02-01-12"].label, entries["03-01-05-01-02-01-12"].speaker) == ("angry", "12")
    assert (entries["03-01-01-01-01-02-07"].label, entries["03-01-01-01-01-02-07"].speaker) == (
        "neutral",
        "07",
    )
    assert entries["notes"].error == "not a RAVDESS file name"
    assert entries["notes"].path == str(tmp_path / "Actor" / "notes.wav")


def test_a_frame_level_extractor_must_say_its_dimensions():
    @dataclass(frozen=True)
    class Frameless(Extractor):
        name: ClassVar[str] = "frameless"
        frame_level: ClassVar[bool] = True

    with pytest.raises(ValueError, match="frame_level extractors define n_dims"):
        register_extractor(Frameless)
    assert "frameless" not in REGISTRY
