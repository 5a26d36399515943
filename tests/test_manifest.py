import os

import numpy as np
import pandas as pd
import pytest
from conftest import tone, write_wav

from serflow.corpus.adapters import ManifestError, read_entries, read_table
from serflow.corpus.manifest import (
    build_manifest,
    shard_of,
    write_shards,
)


def _wavs(root, names, sr=16000):
    for name in names:
        write_wav(root / name, tone(150 + 10 * len(name), 0.5, sr=sr), sr=sr)


def test_emodb_names(tmp_path):
    _wavs(tmp_path, ["03a01Fa.wav", "16b10Wc.wav", "readme.wav"])
    entries = {e.id: e for e in read_entries({"name": "e", "adapter": "emodb", "root": str(tmp_path)})}
    assert (entries["03a01Fa"].label, entries["03a01Fa"].speaker) == ("happiness", "03")
    assert (entries["16b10Wc"].label, entries["16b10Wc"].speaker) == ("anger", "16")
    assert "SSTTTEV" in entries["readme"].error
    half = read_entries({"name": "e", "adapter": "emodb", "root": str(tmp_path), "speaker_ids": ["16"]})
    assert [e.id for e in half] == ["16b10Wc"]  # only the speakers asked for


def test_csv_adapter_resolves_relative_paths_and_sniffs_separator(tmp_path):
    _wavs(tmp_path / "audio", ["a.wav", "b.wav", "c.wav"])
    table = tmp_path / "meta" / "list.csv"
    table.parent.mkdir()
    table.write_text(
        "\ufefffile;emo;who;part\n../audio/a.wav;joy;s1;train\n../audio/b.wav;sad;s2;\n../audio/c.wav;;s2;test\n",
        encoding="utf-8",
    )
    cfg = {
        "name": "c",
        "adapter": "csv",
        "table": str(table),
        "path_column": "file",
        "label_column": "emo",
        "speaker_column": "who",
        "split_column": "part",
    }
    entries = read_entries(cfg)
    assert [e.id for e in entries] == ["../audio/a", "../audio/b", "../audio/c"]
    assert [e.split for e in entries] == ["train", "train", "test"]
    assert [e.label for e in entries] == ["joy", "sad", None]
    assert entries[0].path == str(tmp_path / "audio" / "a.wav")
    assert sum(os.path.exists(e.path) for e in entries) == 3


def test_csv_table_errors_name_file_and_line(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("path,label\na.wav,x\n")
    with pytest.raises(ManifestError, match="missing column.*'file'"):
        read_entries({"name": "c", "adapter": "csv", "table": str(table), "path_column": "file"})
    table.write_text("path,label,split\na.wav,x,dev\n")
    with pytest.raises(ManifestError, match=r"t.csv, line 2: split 'dev'"):
        read_entries({"name": "c", "adapter": "csv", "table": str(table)})
    table.write_text("path,label\na.wav,x\nsub/../a.wav,y\n")
    with pytest.raises(ManifestError, match="duplicate id 'a'"):
        read_entries({"name": "c", "adapter": "csv", "table": str(table)})


def test_competition_seed003_layout(tmp_path):
    _wavs(tmp_path / "train", ["TRAIN_0000.wav", "TRAIN_0001.wav"])
    _wavs(tmp_path / "test", ["TEST_0000.wav"])
    (tmp_path / "train.csv").write_text(
        "id,path,label\nTRAIN_0000,./train/TRAIN_0000.wav,0\nTRAIN_0001,./train/TRAIN_0001.wav,5\n"
    )
    (tmp_path / "test.csv").write_text("id,path\nTEST_0000,./test/TEST_0000.wav\n")
    entries = read_entries({"name": "d", "adapter": "competition", "root": str(tmp_path)})
    assert [(e.id, e.label, e.split) for e in entries] == [
        ("TRAIN_0000", "0", "train"),
        ("TRAIN_0001", "5", "train"),
        ("TEST_0000", None, "test"),
    ]
    assert entries[2].path == str(tmp_path / "test" / "TEST_0000.wav")


def test_competition_seed000_layout(tmp_path):
    _wavs(tmp_path / "train_data" / "train_data", ["001.wav", "002.wav"])
    _wavs(tmp_path / "test_data" / "test_data", ["101.wav"])
    (tmp_path / "train.csv").write_text("file_name,emotion\n001.wav,angry\n002.wav,sad\n")
    (tmp_path / "test.csv").write_text("file_name\n101.wav\n")
    cfg = {
        "name": "k",
        "adapter": "competition",
        "root": str(tmp_path),
        "id_column": "file_name",
        "path_column": "file_name",
        "label_column": "emotion",
        "train_audio_dir": "train_data/train_data",
        "test_audio_dir": "test_data/test_data",
    }
    entries = read_entries(cfg)
    assert [(e.id, e.label, e.split) for e in entries] == [
        ("001.wav", "angry", "train"),
        ("002.wav", "sad", "train"),
        ("101.wav", None, "test"),
    ]
    assert all(e.error is None for e in entries) and sum(os.path.exists(e.path) for e in entries) == 3


def test_folders_adapter_and_label_map(tmp_path):
    _wavs(tmp_path / "amazement", ["s1_a.wav"])
    _wavs(tmp_path / "nostalgia", ["s2_b.wav"])
    _wavs(tmp_path / "weird", ["s1_c.wav"])
    _wavs(tmp_path / "joy", ["s3_d.wav"])
    cfg = {
        "name": "f",
        "adapter": "folders",
        "root": str(tmp_path),
        "speaker_pattern": r"^(?P<speaker>s\d)_",
        "label_map": {"amazement": "joy", "nostalgia": "sadness"},
    }
    entries = {e.id: e for e in read_entries(cfg)}
    assert (entries["amazement/s1_a"].label, entries["amazement/s1_a"].speaker) == ("joy", "s1")
    assert entries["nostalgia/s2_b"].label == "sadness"
    assert entries["joy/s3_d"].label == "joy" and entries["joy/s3_d"].error is None
    assert entries["weird/s1_c"].error == "label 'weird' not in label_map"


def test_build_manifest_rejects_with_reasons(tmp_path):
    _wavs(tmp_path / "ok", ["a.wav"])
    write_wav(tmp_path / "ok" / "b.wav", tone(200, 1.0, sr=44100), sr=44100)
    (tmp_path / "ok" / "empty.wav").write_bytes(b"")
    write_wav(tmp_path / "ok" / "short.wav", np.zeros(200, np.float32))
    (tmp_path / "t.csv").write_text(
        "path,label,speaker\nok/a.wav,x,s1\nok/b.wav,y,s2\nok/empty.wav,x,s1\nok/short.wav,x,s1\nok/gone.wav,x,s1\n"
    )
    entries = read_entries({"name": "m", "adapter": "csv", "table": str(tmp_path / "t.csv")})
    manifest, rejected = build_manifest(entries, min_samples=512, sample_rate=16000)
    assert list(manifest["id"]) == ["ok/a", "ok/b"]
    assert list(manifest.columns) == [
        "id", "path", "label", "speaker", "split", "stratum",
        "duration_s", "sample_rate", "channels", "checksum",
    ]  # fmt: skip
    assert manifest.loc[1, "sample_rate"] == 44100 and manifest.loc[1, "duration_s"] == pytest.approx(1.0)
    reasons = dict(zip(rejected["id"], rejected["reason"]))
    assert reasons["ok/empty"] == "empty file (0 bytes)"
    assert reasons["ok/short"].startswith("shorter than one analysis frame")
    assert reasons["ok/gone"] == "file not found"
    with pytest.raises(ManifestError, match="empty.wav: empty file"):
        build_manifest(entries, min_samples=512, sample_rate=16000, on_bad_file="fail")


def test_shards_are_stable_when_files_are_added(tmp_path):
    ids = [f"clip{i:04d}" for i in range(200)]
    before = {i: shard_of(i, 4) for i in ids}
    assert set(before.values()) == {0, 1, 2, 3}
    assert all(shard_of(i, 4) == k for i, k in before.items())
    manifest = pd.DataFrame({"id": ids, "path": ids, "checksum": ids})
    paths = [tmp_path / f"{k}.tsv" for k in range(4)]
    write_shards(manifest, paths)
    first = [p.read_text() for p in paths]
    write_shards(
        pd.concat([manifest, pd.DataFrame({"id": ["new"], "path": ["new"], "checksum": ["x"]})]), paths
    )
    changed = [k for k, p in enumerate(paths) if p.read_text() != first[k]]
    assert changed == [shard_of("new", 4)]
    assert sum(len(pd.read_csv(p, sep="\t")) for p in paths) == 201


def test_read_table_rejects_ragged_rows(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("path,label\na.wav,x,extra\n")
    with pytest.raises(ManifestError, match="line 2: wrong number of fields"):
        read_table(path)


def test_ids_from_paths_are_unique_for_distinct_files(tmp_path):
    """clip.flac and clip.ogg are two files: both are listed (ids keep their extension)."""
    import soundfile as sf

    y = tone(seconds=0.5)
    (tmp_path / "audio" / "happy").mkdir(parents=True)
    for ext, fmt in ((".flac", "FLAC"), (".ogg", "OGG"), (".wav", "WAV")):
        stem = "clip" if ext != ".wav" else "other"
        sf.write(tmp_path / "audio" / f"{stem}{ext}", y, 16000, format=fmt)
        sf.write(tmp_path / "audio" / "happy" / f"{stem}{ext}", y, 16000, format=fmt)
    (tmp_path / "audio" / "sad").mkdir()
    sf.write(tmp_path / "audio" / "sad" / "clip.wav", y, 16000)
    (tmp_path / "list.csv").write_text(
        "path,label\naudio/clip.flac,a\naudio/clip.ogg,b\naudio/other.wav,a\n", encoding="utf-8"
    )
    entries = read_entries({"name": "c", "adapter": "csv", "table": str(tmp_path / "list.csv")})
    assert [e.id for e in entries] == ["audio/clip.flac", "audio/clip.ogg", "audio/other"]
    manifest, rejected = build_manifest(entries, min_samples=512, sample_rate=16000)
    assert len(manifest) == 3 and rejected.empty and manifest["checksum"].nunique() == 3
    folders = read_entries({"name": "f", "adapter": "folders", "root": str(tmp_path / "audio")})
    assert [e.id for e in folders] == ["happy/clip.flac", "happy/clip.ogg", "happy/other", "sad/clip"]
    # one file listed twice is still a duplicate
    (tmp_path / "list.csv").write_text(
        "path,label\naudio/clip.flac,a\naudio/./clip.flac,b\n", encoding="utf-8"
    )
    with pytest.raises(ManifestError, match="duplicate id 'audio/clip'"):
        read_entries({"name": "c", "adapter": "csv", "table": str(tmp_path / "list.csv")})


def test_probes_are_reused_while_files_are_unchanged(tmp_path):
    from serflow.corpus.probes import ProbeCache

    paths = [write_wav(tmp_path / f"c{i}.wav", tone(150 + 20 * i, 0.3)) for i in range(4)]
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    entries = read_entries({"name": "f", "adapter": "csv", "table": str(_table(tmp_path, paths))})
    store = tmp_path / "probes.parquet"
    probes = ProbeCache(store)
    first, rejected = build_manifest(entries, min_samples=512, sample_rate=16000, probes=probes, threads=2)
    probes.save()
    assert (probes.misses, probes.hits) == (5, 0) and list(rejected["id"]) == ["bad"]
    again = ProbeCache(store)
    second, rejected2 = build_manifest(entries, min_samples=512, sample_rate=16000, probes=again)
    assert (again.misses, again.hits) == (0, 5)
    pd.testing.assert_frame_equal(first, second)
    pd.testing.assert_frame_equal(rejected, rejected2)
    # a longer minimum length applies to reused probes too
    _, short = build_manifest(entries, min_samples=16000, sample_rate=16000, probes=again)
    assert short["reason"].str.startswith("shorter than one analysis frame").sum() == 4
    # a rewritten file is probed again
    write_wav(paths[0], tone(400, 0.5))
    os.utime(paths[0], ns=(1, 1))
    third = ProbeCache(store)
    changed, _ = build_manifest(entries, min_samples=512, sample_rate=16000, probes=third)
    assert (third.misses, third.hits) == (1, 4)
    assert changed["checksum"].iloc[0] != first["checksum"].iloc[0]
    assert changed["duration_s"].iloc[0] == pytest.approx(0.5)


def _table(root, paths):
    table = root / "list.csv"
    rows = [f"{p.name},x" for p in paths] + ["bad.wav,x"]
    table.write_text("path,label\n" + "\n".join(rows) + "\n")
    return table


def test_competition_with_a_header_only_test_table(tmp_path):
    write_wav(tmp_path / "a.wav", tone(seconds=0.3))
    (tmp_path / "train.csv").write_text("id,path,label\na,a.wav,x\n")
    (tmp_path / "test.csv").write_text("id,path\n")  # no test clips
    entries = read_entries({"name": "c", "adapter": "competition", "root": str(tmp_path)})
    assert [(e.id, e.split) for e in entries] == [("a", "train")]
