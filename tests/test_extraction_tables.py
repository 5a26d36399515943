import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import tone, write_wav

from serflow.audio import AudioError, checksum_bytes
from serflow.extraction import extract_shard
from serflow.features import FeatureParams, feature_names, select_columns
from serflow.tables import collect_rejected, merge_feature_table, read_metadata, write_shard

P = FeatureParams()


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
    matrix, errors, stats = extract_shard(ids, paths, sums, P, tmp_path / "cache")
    assert (stats.computed, stats.cached, stats.failed) == (3, 0, 1)
    assert errors[:3] == [None] * 3 and errors[3].startswith("cannot decode audio")
    assert np.isfinite(matrix[:3]).all() and np.isnan(matrix[3]).all()
    again, _, stats2 = extract_shard(ids, paths, sums, P, tmp_path / "cache")
    assert (stats2.computed, stats2.cached, stats2.failed) == (0, 3, 1)
    np.testing.assert_array_equal(again[:3], matrix[:3])
    with pytest.raises(AudioError, match="broken.wav"):
        extract_shard(ids, paths, sums, P, tmp_path / "cache", on_bad_file="fail")


def test_tables_merge_in_manifest_order_and_list_failures(tmp_path, clips):
    ids, paths, sums = clips
    names = feature_names(P)
    shard_paths = []
    for k, part in enumerate([[2, 0], [3, 1]]):  # shards in another order than the manifest
        m, e, s = extract_shard(
            [ids[i] for i in part], [paths[i] for i in part], [sums[i] for i in part], P, tmp_path
        )
        shard_paths.append(tmp_path / f"{k}.parquet")
        write_shard(shard_paths[-1], [ids[i] for i in part], m, e, names, s, P)
    assert read_metadata(shard_paths[0])["stats"]["computed"] == 2
    manifest = pd.DataFrame(
        {"id": ids, "path": paths, "label": ["a", "b", None, "a"], "speaker": ["s1", "s2", "s1", None],
         "split": ["train", "train", "test", "train"]}
    )  # fmt: skip
    manifest.to_parquet(tmp_path / "manifest.parquet")
    cols = select_columns(names, ["prosody"])
    table = merge_feature_table(tmp_path / "manifest.parquet", shard_paths, cols, {"feature_set": "prosody"})
    assert table.column_names == ["id", "label", "speaker", "split", *cols]
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
