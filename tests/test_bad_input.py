"""Bad input through the real workflow: every case works, is rejected with a reason, or stops the run."""

import csv
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import job_counts, run_snakemake, tone, write_wav
from markupsafe import escape

from serflow.features.tables import ID_COLUMNS

LABEL_MAP = {"ang": "anger", "neu": "neutral"}


def _clip(label: str, k: int, sr: int = 16000, seconds: float = 1.0) -> np.ndarray:
    """A voiced stand-in whose pitch and level depend on the label."""
    base = 260.0 if label == "ang" else 140.0
    amp = 0.6 if label == "ang" else 0.2
    return tone(base + 7.0 * k, seconds, sr=sr, amp=amp)


def _stereo(y, n):
    return np.stack([y * (1.0 - 0.1 * c) for c in range(n)], axis=1)


def _truncated(path, label, k):
    write_wav(path, _clip(label, k))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt_header(path, label, k):
    write_wav(path, _clip(label, k))
    data = path.read_bytes()
    path.write_bytes(b"JUNK" + data[4:])


# file name -> (writer(path, label, k), None when it must work, else its rejection reason)
CASES = {
    "pcm8.wav": (lambda p, lab, k: write_wav(p, _clip(lab, k), subtype="PCM_U8"), None),
    "pcm24.wav": (lambda p, lab, k: write_wav(p, _clip(lab, k), subtype="PCM_24"), None),
    "float32.wav": (lambda p, lab, k: write_wav(p, _clip(lab, k), subtype="FLOAT"), None),
    "rate 8k.wav": (lambda p, lab, k: write_wav(p, _clip(lab, k, 8000), 8000), None),
    "rate44k.wav": (lambda p, lab, k: write_wav(p, _clip(lab, k, 44100), 44100), None),
    "rate48k.wav": (lambda p, lab, k: write_wav(p, _clip(lab, k, 48000), 48000), None),
    "rate96k.wav": (lambda p, lab, k: write_wav(p, _clip(lab, k, 96000), 96000), None),
    "stereo.wav": (lambda p, lab, k: write_wav(p, _stereo(_clip(lab, k), 2)), None),
    "six channels.wav": (lambda p, lab, k: write_wav(p, _stereo(_clip(lab, k), 6)), None),
    "lossless.flac": (lambda p, lab, k: write_wav(p, _clip(lab, k)), None),
    "vorbis.ogg": (lambda p, lab, k: write_wav(p, _clip(lab, k), subtype="VORBIS"), None),
    "clipped.wav": (lambda p, lab, k: write_wav(p, np.clip(4.0 * _clip(lab, k), -1.0, 1.0)), None),
    "émotion 日本.wav": (lambda p, lab, k: write_wav(p, _clip(lab, k)), None),
    'it\'s "quoted".wav': (lambda p, lab, k: write_wav(p, _clip(lab, k)), None),
    "truncated.wav": (_truncated, "truncated WAV: data chunk declares 32000 bytes, the file holds 15978"),
    "corrupt header.wav": (_corrupt_header, "cannot decode audio (Format not recognised.)"),
    "zero bytes.wav": (lambda p, lab, k: p.write_bytes(b""), "empty file (0 bytes)"),
    "text.wav": (lambda p, lab, k: p.write_text("id,label\n1,ang\n"), "cannot decode audio"),
    "no samples.wav": (lambda p, lab, k: write_wav(p, np.zeros(0, np.float32)), "no audio samples"),
    "tiny.wav": (
        lambda p, lab, k: write_wav(p, _clip(lab, k)[:200]),
        "shorter than one analysis frame (200 samples at 16000 Hz < 512)",
    ),
    "never written.wav": (lambda p, lab, k: None, "file not found"),
}


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    from serflow.corpus.demo import generate_demo_corpus

    tmp = tmp_path_factory.mktemp("bad")
    audio = tmp / "audio"
    audio.mkdir()
    rows = []
    # Good clips, so that the run has something to learn from: 4 speakers x 2 labels x 2.
    for s in range(4):
        for label in LABEL_MAP:
            for k in range(2):
                name = f"good_s{s}_{label}_{k}.wav"
                write_wav(audio / name, _clip(label, 3 * s + k))
                rows.append((f"audio/{name}", label, f"s{s}"))
    for k, (name, (make, _)) in enumerate(CASES.items()):
        label = "ang" if k % 2 else "neu"
        make(audio / name, label, k)
        rows.append((f"audio/{name}", label, f"s{k % 4}"))
    base = _clip("neu", 0)
    write_wav(audio / "base.wav", base)
    write_wav(audio / "dc offset.wav", 0.5 * base + 0.4)
    write_wav(audio / "silent.wav", np.zeros(16000, np.float32))
    write_wav(audio / "ten minutes.wav", np.tile(_clip("ang", 5, seconds=2.0), 300))
    rows += [
        ("audio/base.wav", "neu", "s0"),
        ("audio/dc offset.wav", "neu", "s1"),
        ("audio/silent.wav", "neu", "s2"),
        ("audio/ten minutes.wav", "ang", "s3"),
        ("audio/good_s0_ang_0.wav", "", "s0"),  # same file, listed again with an empty label
        ("audio/good_s1_ang_0.wav", "happy", "s1"),  # not in label_map
    ]
    # The table: byte-order mark, ';' separator, and ids (two rows share a file).
    with open(tmp / "list.csv", "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh, delimiter=";")
        writer.writerow(["id", "path", "label", "speaker"])
        for i, row in enumerate(rows):
            writer.writerow([f"clip{i:03d}", *row])
    # A competition folder whose test.csv names a file that does not exist.
    comp = generate_demo_corpus(tmp / "comp", n_train=24, n_test=4, seed=5)
    test = pd.read_csv(comp / "test.csv", dtype=str)
    test = pd.concat([test, pd.DataFrame({"id": ["ghost"], "path": ["wav/ghost.wav"]})], ignore_index=True)
    test.to_csv(comp / "test.csv", index=False)
    sample = pd.read_csv(comp / "sample_submission.csv", dtype=str)
    sample = pd.concat([sample, pd.DataFrame({"id": ["ghost"], sample.columns[1]: [""]})], ignore_index=True)
    sample.to_csv(comp / "sample_submission.csv", index=False)
    config = {
        "datasets": [
            {"name": "mixed", "adapter": "csv", "table": str(tmp / "list.csv"), "label_map": LABEL_MAP},
            {"name": "comp", "adapter": "competition", "root": str(comp)},
        ],
        "feature_tables": ["prosody", "all"],
        "models": {"majority": {"kind": "majority"}, "logreg": {"kind": "logreg"}},
        "runs": [{"feature_sets": ["prosody", "all"], "models": ["majority", "logreg"]}],
        "evaluation": {"n_bootstrap": 20},
    }
    proc = run_snakemake(tmp, config)
    return tmp, proc, rows


def _ids(rows, path):
    return [f"clip{i:03d}" for i, r in enumerate(rows) if r[0] == path]


def test_every_case_works_or_is_rejected_with_its_reason(bad_run):
    tmp, _, rows = bad_run
    manifest = pd.read_parquet(tmp / "results/mixed/manifest.parquet").set_index("id")
    rejected = pd.read_csv(tmp / "results/mixed/rejected.csv", dtype=str).set_index("id")
    table = pq.read_table(tmp / "results/mixed/features/all.parquet").to_pandas().set_index("id")
    for name, (_, reason) in CASES.items():
        (clip,) = _ids(rows, f"audio/{name}")
        if reason is None:
            assert clip in manifest.index and clip in table.index, name
        else:
            assert clip not in manifest.index and clip not in table.index, name
            assert reason in rejected.loc[clip, "reason"], (name, rejected.loc[clip, "reason"])
            assert rejected.loc[clip, "path"] == str(tmp / "audio" / name)
    reasons = rejected["reason"].tolist()
    assert "empty label" in reasons and "label 'happy' not in label_map" in reasons
    assert not any("0x" in r or "BytesIO" in r for r in reasons)  # no memory addresses
    assert len(rejected) == sum(r is not None for _, r in CASES.values()) + 2
    # What was decoded is described as it was found on disk.
    info = manifest.loc[[_ids(rows, f"audio/{n}")[0] for n in ("rate96k.wav", "six channels.wav")]]
    assert info["sample_rate"].tolist() == [96000, 16000] and info["channels"].tolist() == [1, 6]
    (long,) = _ids(rows, "audio/ten minutes.wav")
    assert manifest.loc[long, "duration_s"] == pytest.approx(600.0)
    assert set(manifest["label"]) == {"anger", "neutral"}


def test_no_nan_or_infinity_and_defined_features_for_silence(bad_run):
    tmp, _, rows = bad_run
    for name in ("prosody", "all"):
        table = pq.read_table(tmp / f"results/mixed/features/{name}.parquet")
        x = np.column_stack([table[c].to_numpy() for c in table.column_names if c not in ID_COLUMNS])
        assert np.isfinite(x).all()
    table = pq.read_table(tmp / "results/mixed/features/all.parquet").to_pandas().set_index("id")
    (silent,) = _ids(rows, "audio/silent.wav")
    assert table.loc[silent, "f0_voiced_fraction"] == 0.0
    assert table.loc[silent, "f0_mean"] == 0.0 and table.loc[silent, "f0_std"] == 0.0
    # A DC offset is removed before analysis: same spectrum as the clean clip, 6 dB down.
    (base,), (dc,) = _ids(rows, "audio/base.wav"), _ids(rows, "audio/dc offset.wav")
    assert table.loc[dc, "energy_mean"] == pytest.approx(table.loc[base, "energy_mean"] - 6.02, abs=0.05)
    assert table.loc[dc, "f0_p50"] == pytest.approx(table.loc[base, "f0_p50"], rel=0.01)
    for run in ("prosody-logreg", "all-logreg"):
        metrics = json.loads((tmp / f"results/mixed/runs/{run}/metrics.json").read_text())
        assert metrics["n_clips"] == len(table) and np.isfinite(metrics["uar"])


def test_competition_test_clip_missing(bad_run):
    tmp, proc, _ = bad_run
    rejected = pd.read_csv(tmp / "results/comp/rejected.csv", dtype=str)
    assert rejected[["id", "stage", "reason"]].values.tolist() == [["ghost", "manifest", "file not found"]]
    sub = pd.read_csv(tmp / "results/comp/submission.csv", dtype=str)
    summary = json.loads((tmp / "results/comp/submissions.json").read_text())
    assert sub["id"].iloc[-1] == "ghost" and sub.iloc[-1, 1] == summary["fallback_label"]
    assert all(r["missing"] == ["ghost"] for r in summary["runs"].values())


def test_report_lists_every_rejected_file(bad_run):
    tmp, _, _ = bad_run
    page = (tmp / "results/report.html").read_text(encoding="utf-8")
    for name in ("mixed", "comp"):
        rejected = pd.read_csv(tmp / f"results/{name}/rejected.csv", dtype=str)
        for row in rejected.itertuples():
            assert str(escape(row.path)) in page and str(escape(row.reason)) in page  # as Jinja escapes
    assert "1 test id(s) without a prediction" in page


@pytest.mark.parametrize(
    "table, problem",
    [
        (
            "id,path,label\na,x.wav,ang\nb,y.wav,neu\na,z.wav,ang\n",
            "line 4: duplicate id 'a' in dataset 't' (also ",
        ),
        ("path,label\nx.wav,ang\n,neu\n", "line 3: empty 'path'"),
        ("path;label\nx.wav;ang;extra\n", "line 2: wrong number of fields"),
    ],
)
def test_table_errors_stop_before_any_job(tmp_path, table, problem):
    (tmp_path / "t.csv").write_text(table)
    config = {"datasets": [{"name": "t", "adapter": "csv", "table": str(tmp_path / "t.csv")}]}
    proc = run_snakemake(tmp_path, config, check=False)
    assert proc.returncode != 0 and job_counts(proc) == {}
    assert f"{tmp_path / 't.csv'}, {problem}" in proc.stderr
    assert not (tmp_path / "results").exists()


def test_missing_table_stops_before_any_job(tmp_path):
    config = {"datasets": [{"name": "t", "adapter": "csv", "table": str(tmp_path / "nowhere.csv")}]}
    proc = run_snakemake(tmp_path, config, check=False)
    assert proc.returncode != 0 and f"{tmp_path / 'nowhere.csv'}: table not found" in proc.stderr
    assert not (tmp_path / "results").exists()


def test_a_failing_job_writes_its_error_to_its_log(tmp_path):
    import subprocess
    import sys

    log = tmp_path / "job.log"
    code = "from serflow.runtime import start_job; start_job(%r); raise ValueError('no such column: f0')"
    proc = subprocess.run([sys.executable, "-c", code % str(log)], capture_output=True, text=True)
    assert proc.returncode == 1 and "ValueError: no such column: f0" in proc.stderr  # still on the terminal
    text = log.read_text()
    assert "ERROR job failed: ValueError: no such column: f0" in text and "Traceback" in text
