"""Report figures with matplotlib, returned as PNG data URIs (embedded, no files)."""

from __future__ import annotations

import base64
import io

import numpy as np

_PNG_META = {"Software": None}  # no version stamp: same data, same bytes


def _plain(text) -> str:
    """Text shown as is: matplotlib would read $...$ in labels as mathtext."""
    return str(text).replace("$", r"\$")


def _figure(width=5.0, height=2.6, rows=1, **kw):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(rows, 1, figsize=(width, height), dpi=90, **kw)


def _data_uri(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", metadata=_PNG_META)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def bar_chart(counts: dict, title: str, xlabel: str) -> str:
    """Bars of ``counts`` (name -> count), names as given (shown as plain text)."""
    names = [_plain(k) for k in counts]
    fig, ax = _figure(max(3.0, 0.45 * len(names) + 1.5))
    ax.bar(range(len(names)), list(counts.values()), color="#4a90d9")
    tilt = len(names) > 6
    ax.set_xticks(range(len(names)), names, rotation=45 if tilt else 0, ha="right" if tilt else "center")
    ax.set_title(_plain(title))
    ax.set_xlabel(_plain(xlabel))
    ax.set_ylabel("clips")
    return _data_uri(fig)


def histogram(values, title: str, xlabel: str, bins: int = 30) -> str:
    fig, ax = _figure()
    ax.hist(np.asarray(values, dtype=float), bins=bins, color="#4a90d9", edgecolor="white")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("clips")
    return _data_uri(fig)


def clip_figure(y: np.ndarray, sample_rate: int, title: str, n_mels: int = 64, hop_length: int = 160) -> str:
    """Waveform above a log-mel spectrogram (dB) of one clip."""
    import librosa

    fig, (ax_wave, ax_mel) = _figure(6.0, 4.0, rows=2, sharex=True, gridspec_kw={"height_ratios": [1, 2]})
    t = np.arange(len(y)) / sample_rate
    ax_wave.plot(t, y, linewidth=0.4, color="#333333")
    ax_wave.set_title(_plain(title))
    ax_wave.set_ylabel("amplitude")
    mel = librosa.feature.melspectrogram(y=y, sr=sample_rate, n_mels=n_mels, hop_length=hop_length)
    db = librosa.power_to_db(mel, ref=np.max)
    duration = len(y) / sample_rate
    ax_mel.imshow(db, origin="lower", aspect="auto", extent=(0, duration, 0, n_mels), cmap="magma")
    ax_mel.set_xlabel("time (s)")
    ax_mel.set_ylabel("mel band")
    return _data_uri(fig)


def audio_data_uri(y: np.ndarray, sample_rate: int, max_seconds: float = 10.0) -> str:
    """The clip (at most ``max_seconds``) as an embedded 16-bit WAV."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, y[: int(max_seconds * sample_rate)], sample_rate, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def critical_difference(ranking: dict) -> str:
    """Demšar's critical-difference diagram of a ``serflow.evaluation.ranking.rank_runs``
    result (``scikit_posthocs.critical_difference_diagram``): average ranks on an axis,
    runs the Nemenyi test cannot tell apart joined by a bar."""
    import pandas as pd
    from scikit_posthocs import critical_difference_diagram

    runs = ranking["runs"]
    names = {r: _plain(r) for r in runs}
    ranks = pd.Series({names[r]: ranking["average_rank"][r] for r in runs})
    p = pd.DataFrame(ranking["nemenyi_p"]).loc[runs, runs].rename(index=names, columns=names)
    fig, ax = _figure(7.0, 0.9 + 0.22 * len(runs))
    critical_difference_diagram(ranks, p, alpha=ranking["alpha"], ax=ax)
    n, cd = ranking["friedman"]["n_datasets"], ranking["critical_difference"]
    ax.set_title(f"average rank over {n} datasets (1 = best); Nemenyi CD {cd:.2f}", fontsize=9)
    return _data_uri(fig)
