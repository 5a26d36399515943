import numpy as np

from serflow.cache import FeatureCache


def test_roundtrip_and_misses(tmp_path):
    cache = FeatureCache(tmp_path, "k1", 4)
    assert cache.get("ab" * 16) is None
    vec = np.arange(4, dtype=np.float32)
    path = cache.put("ab" * 16, vec)
    assert path == tmp_path / "k1" / "ab" / f"{'ab' * 16}.npy"
    assert (cache.get("ab" * 16) == vec).all()
    assert FeatureCache(tmp_path, "k2", 4).get("ab" * 16) is None  # other parameters
    assert not list(tmp_path.rglob("*.tmp"))


def test_corrupt_or_wrong_shape_entries_are_misses(tmp_path):
    cache = FeatureCache(tmp_path, "k", 3)
    cache.put("cd" * 16, np.ones(3))
    cache.path("cd" * 16).write_bytes(b"\x93NUMPY garbage")
    assert cache.get("cd" * 16) is None
    FeatureCache(tmp_path, "k", 5).put("ef" * 16, np.ones(5))
    assert cache.get("ef" * 16) is None
