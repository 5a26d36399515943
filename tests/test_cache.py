import numpy as np

from serflow.features import Frames, Signal
from serflow.features.cache import FeatureCache

SUM = "ab" * 16


def test_roundtrip_layout_and_misses(tmp_path):
    ext = Signal()
    cache = FeatureCache(tmp_path, ext)
    assert cache.get(SUM) is None
    vec = np.arange(2, dtype=np.float32)
    path = cache.put(SUM, vec)
    assert path == tmp_path / "signal" / ext.cache_key() / "ab" / f"{SUM}.npy"
    assert (cache.get(SUM) == vec).all()
    assert FeatureCache(tmp_path, Signal(tempo_hop_length=256)).get(SUM) is None  # other parameters
    assert not list(tmp_path.rglob("*.tmp"))


def test_frame_matrices_of_any_length(tmp_path):
    ext = Frames(streams=("mel", "f0"), n_mels=8)
    cache = FeatureCache(tmp_path, ext)
    for n_frames in (1, 57):
        m = np.random.default_rng(n_frames).normal(size=(n_frames, 9)).astype(np.float32)
        cache.put(f"{n_frames:02d}" * 16, m)
        np.testing.assert_array_equal(cache.get(f"{n_frames:02d}" * 16), m)
    # pooling is not part of the key: the same entries serve another pooling
    assert (
        FeatureCache(tmp_path, Frames(streams=("mel", "f0"), n_mels=8, pooling=("max",))).get("01" * 16)
        is not None
    )


def test_corrupt_or_wrong_shape_entries_are_misses(tmp_path):
    cache = FeatureCache(tmp_path, Signal())
    cache.put("cd" * 16, np.ones(2))
    cache.path("cd" * 16).write_bytes(b"\x93NUMPY garbage")
    assert cache.get("cd" * 16) is None
    np.save(cache.path("cd" * 16), np.ones(5, dtype=np.float32))
    assert cache.get("cd" * 16) is None
    np.save(cache.path("cd" * 16), np.ones(2, dtype=np.float64))
    assert cache.get("cd" * 16) is None
