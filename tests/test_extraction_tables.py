import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import tone, write_wav

from serflow.corpus.audio import AudioError, checksum_bytes
from serflow.features import Descriptors, Frames, select_columns
from serflow.features.extraction import extract_shard
from serflow.features.tables import collect_rejected, merge_feature_table, read_metadata, write_shard

P = Descriptors()


@pytest.fixture
def clips(tmp_path):
    paths = [write_wav(tmp_path / f"c{i}.wav", tone(120 + 60 * i, 0.6)) for i in range(3)]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEfmt garbage")
    paths.append(broken)
    ids = [p.stem for p in paths]
    sums = [checksum_bytes(p.read_bytes()) for p in paths]
    return ids, [str(p) for p in paths], sums


def test_extract_shard_computes_once_then_hits_cache(tmp_path, clips):
    ids, paths, sums = clips
    matrix, errors, stats = extract_shard(P, ids, paths, sums, tmp_path / "cache")
    assert (stats.computed, stats.cached, stats.failed) == (3, 0, 1)
    assert errors[:3] == [None] * 3 and errors[3].startswith("cannot decode audio")
    assert np.isfinite(matrix[:3]).all() and np.isnan(matrix[3]).all()
    again, _, stats2 = extract_shard(P, ids, paths, sums, tmp_path / "cache")
    assert (stats2.computed, stats2.cached, stats2.failed) == (0, 3, 1)
    np.testing.assert_array_equal(again[:3], matrix[:3])
    with pytest.raises(AudioError, match="broken.wav"):
        extract_shard(P, ids, paths, sums, tmp_path / "cache", on_bad_file="fail")


def test_non_finite_features_are_a_failure_never_cached(tmp_path, clips, monkeypatch):
    """A guard behind the extractor's own: NaN or infinity never leaves a shard job."""
    real = Descriptors.compute

    def poisoned(self, clip):
        vec = real(self, clip)
        vec[[0, 5]] = [np.nan, np.inf]
        return vec

    monkeypatch.setattr(Descriptors, "compute", poisoned)
    ids, paths, sums = clips
    matrix, errors, stats = extract_shard(P, ids[:1], paths[:1], sums[:1], tmp_path / "cache")
    names = P.names()
    assert errors == [f"non-finite feature values (2: {names[0]}, {names[5]}, ...)"]
    assert stats.failed == 1 and np.isnan(matrix).all()
    assert not list((tmp_path / "cache").rglob("*.npy"))


def test_tables_merge_in_manifest_order_and_list_failures(tmp_path, clips):
    ids, paths, sums = clips
    shard_paths = []
    for k, part in enumerate([[2, 0], [3, 1]]):  # shards in another order than the manifest
        m, e, s = extract_shard(
            P, [ids[i] for i in part], [paths[i] for i in part], [sums[i] for i in part], tmp_path
        )
        shard_paths.append(tmp_path / f"{k}.parquet")
        write_shard(shard_paths[-1], [ids[i] for i in part], m, e, P, s)
    assert read_metadata(shard_paths[0])["stats"]["computed"] == 2
    manifest = pd.DataFrame(
        {"id": ids, "path": paths, "label": ["a", "b", None, "a"], "speaker": ["s1", "s2", "s1", None],
         "split": ["train", "train", "test", "train"]}
    )  # fmt: skip
    manifest.to_parquet(tmp_path / "manifest.parquet")
    cols = select_columns(P.column_groups(), ["prosody"])
    table = merge_feature_table(
        tmp_path / "manifest.parquet", {"descriptors": (shard_paths, cols)}, {"feature_set": "prosody"}
    )
    assert table.column_names == ["id", "label", "speaker", "split", "stratum", *cols]
    assert table["id"].to_pylist() == ids[:3] and table["label"].to_pylist() == ["a", "b", None]
    pq.write_table(table, tmp_path / "prosody.parquet")
    meta = read_metadata(tmp_path / "prosody.parquet")
    assert meta["feature_set"] == "prosody" and meta["n_rows"] == 3 and meta["versions"]["numpy"]
    rejected = collect_rejected(
        tmp_path / "manifest.parquet",
        pd.DataFrame(
            [["x", "x.wav", "manifest", "empty file (0 bytes)"]], columns=["id", "path", "stage", "reason"]
        ),
        shard_paths,
    )
    assert rejected["id"].tolist() == ["x", "broken"]
    assert rejected.loc[1, "stage"] == "features" and rejected.loc[1, "path"] == paths[3]


def test_merge_with_several_failed_clips_keeps_manifest_order(tmp_path, clips):
    ids, paths, sums = clips
    names = P.names()
    order, shard_ids = [3, 0, 3, 1, 2], ["bad1", "c0", "bad2", "c1", "c2"]
    m, e, s = extract_shard(P, shard_ids, [paths[i] for i in order], [sums[i] for i in order], tmp_path)
    assert [err is not None for err in e] == [True, False, True, False, False]
    write_shard(tmp_path / "s.parquet", shard_ids, m, e, P, s)
    manifest = pd.DataFrame(
        {"id": ["c2", "bad2", "c0", "bad1", "c1"], "label": "x", "speaker": "s", "split": "train"}
    )
    manifest.to_parquet(tmp_path / "manifest.parquet")
    table = merge_feature_table(
        tmp_path / "manifest.parquet", {"d": ([tmp_path / "s.parquet"], names[:3])}, {}
    )
    assert table["id"].to_pylist() == ["c2", "c0", "c1"]
    np.testing.assert_array_equal(np.column_stack([table[c].to_numpy() for c in names[:3]]), m[[4, 1, 3], :3])


def test_numba_warm_up_waits_for_the_lock_holder(tmp_path):
    """Jobs warm numba's on-disk cache one at a time (concurrent compiles corrupted it)."""
    import fcntl
    import threading

    from serflow.features.extraction import warm_numba_cache

    done = threading.Event()
    (tmp_path / ".numba-warm.lock").touch()
    with open(tmp_path / ".numba-warm.lock") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        worker = threading.Thread(target=lambda: (warm_numba_cache(P, tmp_path), done.set()))
        worker.start()
        assert not done.wait(1.0)  # blocked while another job holds the lock
    worker.join(60)
    assert done.is_set()


def test_tables_join_extractors_and_keep_clips_every_one_processed(tmp_path, clips):
    ids, paths, sums = clips
    frames = Frames(streams=("mel", "f0"), n_mels=8, pooling=("mean", "max"))
    shards = {}
    for ext in (P, frames):
        m, e, s = extract_shard(ext, ids, paths, sums, tmp_path / "cache")
        write_shard(tmp_path / f"{ext.name}.parquet", ids, m, e, ext, s)
        shards[ext.name] = ([tmp_path / f"{ext.name}.parquet"], ext.names())
    assert read_metadata(tmp_path / "frames.parquet")["extractor"]["key"] == frames.cache_key()
    manifest = pd.DataFrame({"id": ids, "label": "x", "speaker": "s", "split": "train"})
    manifest.to_parquet(tmp_path / "manifest.parquet")
    table = merge_feature_table(tmp_path / "manifest.parquet", shards, {})
    assert table["id"].to_pylist() == ids[:3]  # the broken clip failed in both
    assert table.column_names[5:] == P.names() + frames.names()
    assert frames.names()[:3] == ["frames_mel00_mean", "frames_mel00_max", "frames_mel01_mean"]
    assert "frames_f0_max" in frames.names() and len(frames.names()) == 2 * 9


def test_progress_is_logged_with_rate_and_time_left(caplog):
    from serflow.runtime import Progress

    now = [0.0]
    progress = Progress(10, "descriptors features", every_s=30.0, clock=lambda: now[0])
    with caplog.at_level("INFO", logger="serflow"):
        for _ in range(4):
            now[0] += 10.0
            progress.step()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["descriptors features: 3/10 done, 0.1/s, 30 s elapsed, about 70 s left"]
    with caplog.at_level("INFO", logger="serflow"):
        for _ in range(6):
            progress.step()
    assert caplog.records[-1].getMessage().startswith("descriptors features: 10/10 done")
