import numpy as np
import pytest
import soundfile as sf
from conftest import tone, write_wav

from serflow.corpus.audio import AudioError, load_audio, probe_audio, wav_truncation


def test_load_mixes_and_resamples(tmp_path):
    left = tone(220.0, 1.0, sr=44100)
    path = write_wav(tmp_path / "stereo.wav", np.stack([left, left * 0.5], axis=1), sr=44100)
    y = load_audio(path, 16000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 16000) <= 1
    assert np.abs(y).max() == pytest.approx(0.75 * np.abs(left).max(), rel=0.05)


def test_probe_describes_file(tmp_path):
    path = write_wav(tmp_path / "a.flac", tone(seconds=1.5, sr=22050), sr=22050)
    info = probe_audio(path, min_samples=512, target_rate=16000)
    assert info.sample_rate == 22050 and info.channels == 1
    assert info.duration_s == pytest.approx(1.5)
    assert len(info.checksum) == 32
    same = write_wav(tmp_path / "b.flac", tone(seconds=1.5, sr=22050), sr=22050)
    assert probe_audio(same).checksum == info.checksum


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_text("not audio at all"), "cannot decode"),
        (lambda p: sf.write(p, np.zeros((0,), np.float32), 16000), "no audio samples"),
        (lambda p: sf.write(p, np.zeros(100, np.float32), 16000), "shorter than one analysis frame"),
    ],
)
def test_unusable_files_name_the_reason(tmp_path, make, reason):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=reason) as err:
        probe_audio(path, min_samples=512, target_rate=16000)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="file not found"):
        load_audio(tmp_path / "nope.wav", 16000)


def test_truncated_wav_is_rejected_but_streamed_size_is_not(tmp_path):
    path = write_wav(tmp_path / "a.wav", tone(seconds=0.5))
    data = path.read_bytes()
    assert wav_truncation(data) is None
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[:-1000])
    reason = "truncated WAV: data chunk declares 16000 bytes, the file holds 15000"
    with pytest.raises(AudioError, match=reason):
        load_audio(cut, 16000)
    # A writer that did not know the length up front declares 0xFFFFFFFF: decoded as is.
    i = data.index(b"data")
    streamed = data[: i + 4] + b"\xff\xff\xff\xff" + data[i + 8 : -1000]
    assert wav_truncation(streamed) is None


def test_dc_offset_is_removed(tmp_path):
    y = tone(seconds=0.5)
    path = write_wav(tmp_path / "dc.wav", 0.5 * y + 0.3)
    out = load_audio(path, 16000)
    assert abs(float(out.mean())) < 1e-4
    np.testing.assert_allclose(out, 0.5 * y - (0.5 * y).mean(), atol=1e-3)
