"""Reference feature vectors of the seed write-ups 000, 001 and 003, computed as their own code does.

These functions are the write-ups' own per-file computations, transcribed from the notebook code in
``../shared/seeds/`` (``000_d8633cd83784fdf1.txt``, ``001_160625a4cf208e69.txt`` and
``003_be9a8a3e73c85acd.txt``; line numbers below refer to those files). Tests use them to check that
serflow's configurable extractors reproduce the seeds' features; they are not used by the workflow.

Each function takes a mono float32 signal ``y`` that is already loaded at the write-up's sample rate;
loading and resampling are not part of them:

* seed 000: ``librosa.load(file_name, sr=22050)``                                  (000, l. 318)
* seed 001: ``librosa.load(file_path, mono=True, sr=16000)``                       (001, l. 113)
* seed 003: ``librosa.load(file_path, res_type='kaiser_fast', mono=True)``, i.e. librosa's default
  ``sr=22050``; the ``kaiser_fast`` resampler only matters for loading.               (003, l. 265)

Where the write-ups leave something open, the choice made here is stated in the function.
"""

from __future__ import annotations

import librosa
import numpy as np
from sklearn.preprocessing import normalize

SEED000_SR = 22050
SEED001_SR = 16000
SEED003_SR = 22050  # librosa.load's default sr, since 003 passes none
SEED003_MAX_LEN = 1000


def seed000_features(y: np.ndarray) -> dict[str, np.ndarray]:
    """Seed 000's ``extract_feature`` without the loading: spectrogram (257), mel (128), mfcc (20).

    Every librosa call below uses the write-up's arguments only, so the defaults apply:
    ``stft`` hop 128 (n_fft // 4), hann window, centred with constant padding; ``melspectrogram``
    ``sr=22050`` (default, which is also the write-up's load rate), ``n_fft`` inferred as 512 from S,
    128 mel bands; ``power_to_db`` ref=1.0, amin=1e-10, top_db=80; ``mfcc`` n_mfcc=20, DCT type 2,
    ortho norm.
    """
    # 000, l. 322: spectrogram = np.abs(librosa.stft(y = X, n_fft = 512))
    spectrogram = np.abs(librosa.stft(y=y, n_fft=512))
    # 000, l. 323: spectrogram_feature = np.mean(spectrogram, axis = 1)
    spectrogram_feature = np.mean(spectrogram, axis=1)

    # 000, l. 326: power_spectrogram = spectrogram**2
    power_spectrogram = spectrogram**2
    # 000, l. 327: mel_spectrogram = librosa.feature.melspectrogram(S = power_spectrogram)
    mel_spectrogram = librosa.feature.melspectrogram(S=power_spectrogram)
    # 000, l. 328: power_magnitude_to_db = librosa.power_to_db(S = mel_spectrogram)
    power_magnitude_to_db = librosa.power_to_db(S=mel_spectrogram)
    # 000, l. 329: mel_spectrogram_feature= np.mean(power_magnitude_to_db, axis = 1)
    mel_spectrogram_feature = np.mean(power_magnitude_to_db, axis=1)

    # 000, l. 332: MFCC = librosa.feature.mfcc(S = power_magnitude_to_db)
    mfcc = librosa.feature.mfcc(S=power_magnitude_to_db)
    # 000, l. 333: mfcc_feature = np.mean(MFCC, axis = 1)
    mfcc_feature = np.mean(mfcc, axis=1)

    # 000, l. 113 / 126-131: the three go into train_data['spectrogram'], ['mel'], ['mfcc'].
    return {"spectrogram": spectrogram_feature, "mel": mel_spectrogram_feature, "mfcc": mfcc_feature}


def seed001_features(y: np.ndarray) -> np.ndarray:
    """Seed 001's feature: mean mel-spectrogram over frames, L2-normalised (128 values).

    ``melspectrogram`` runs with its defaults apart from ``sr``: n_fft 2048, hop 512, power 2.0,
    128 mel bands, fmax sr/2 = 8000 Hz. The write-up returns ``normalize``'s (1, 128) array; this
    function returns it flattened to (128,), the row the MLP is trained on.
    """
    # 001, l. 113: r, sr = librosa.load(file_path, mono=True, sr=16000)   (loading: not done here)
    sr = SEED001_SR
    # 001, l. 121: mel = librosa.feature.melspectrogram(y=r, sr=sr)
    mel = librosa.feature.melspectrogram(y=y, sr=sr)
    # 001, l. 129: a = np.mean(mel, axis=1)
    a = np.mean(mel, axis=1)
    # 001, l. 135: from sklearn.preprocessing import normalize
    # 001, l. 139: data = normalize(a.reshape(1,128))      (default norm='l2', per row)
    data = normalize(a.reshape(1, 128))
    return data[0]


def _fit_frames(x: np.ndarray, max_len: int = SEED003_MAX_LEN) -> np.ndarray:
    """Zero-pad the last (frame) axis to ``max_len`` as 003 does; cut it to ``max_len`` when longer.

    003's ``np.pad(x, (0, max_len - n))`` raises ValueError for n > max_len (a negative pad width).
    At sr 22050 and hop 512 that is any clip longer than about 23.2 s (1000 frames = 999 hops);
    CREMA-D clips are all shorter, so the write-up never met the case. Truncating to the first
    ``max_len`` frames is the smallest change that keeps the fixed 40 002-value layout; for every
    signal on which 003's code runs, the result is identical to it.
    """
    n = x.shape[-1]
    if n > max_len:
        return x[..., :max_len]
    pad = [(0, 0)] * (x.ndim - 1) + [(0, max_len - n)]
    return np.pad(x, pad)


def seed003_features(y: np.ndarray) -> np.ndarray:
    """Seed 003's librosa route (``preprocess_audio`` without the .npy cache): 40 002 values.

    Layout: pitch (1000) | energy (1) | tempo (1) | mfcc 13x1000 | delta 13x1000 | delta2 13x1000,
    the 13x1000 blocks flattened row-major (coefficient by coefficient), as ``ndarray.flatten()``.

    ``librosa.beat.tempo`` (003, l. 269) was moved to ``librosa.feature.tempo`` in librosa 0.10.0.
    In librosa 0.11 (installed here), ``librosa/beat.py`` defines it as
    ``tempo = moved(moved_from="librosa.beat.tempo", version="0.10.0", version_removed="1.0")(_tempo)``
    with ``from .feature import tempo as _tempo``: the same function behind a FutureWarning. Calling
    ``librosa.feature.tempo`` directly gives the identical value without the warning.
    """
    sr = SEED003_SR
    # 003, l. 265: audio, sample_rate = librosa.load(file_path, res_type='kaiser_fast', mono=True)
    # 003, l. 266: pitch = librosa.yin(audio, fmin=100, fmax=1000)
    #   (yin's own defaults: sr=22050, frame_length=2048, hop 512, trough_threshold=0.1, centred)
    pitch = librosa.yin(y, fmin=100, fmax=1000)
    # 003, l. 267: energy = np.mean(audio ** 2)
    energy = np.mean(y**2)
    # 003, l. 268: onset_env = librosa.onset.onset_strength(y=audio, sr=sample_rate)
    onset_env = librosa.onset.onset_strength(y=y, sr=sr)
    # 003, l. 269: tempo = librosa.beat.tempo(onset_envelope=onset_env, sr=sample_rate)[0]
    tempo = librosa.feature.tempo(onset_envelope=onset_env, sr=sr)[0]
    # 003, l. 270: mfccs = librosa.feature.mfcc(y=audio, sr=sample_rate, n_mfcc=13)
    mfccs = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13)
    # 003, l. 271: delta_mfccs = librosa.feature.delta(mfccs)
    delta_mfccs = librosa.feature.delta(mfccs)
    # 003, l. 272: delta2_mfccs = librosa.feature.delta(mfccs, order=2)
    delta2_mfccs = librosa.feature.delta(mfccs, order=2)
    #   delta's default width=9 needs at least 9 frames: shorter signals (< 8 hops = 4096 samples,
    #   about 0.19 s) raise ParameterError there, as they did in 003.

    # 003, l. 279: max_len = 1000
    # 003, l. 280: pitch = np.pad(pitch, (0, max_len - len(pitch)))
    # 003, l. 281: mfccs = np.pad(mfccs, ((0, 0), (0, max_len - mfccs.shape[1])))
    # 003, l. 282: delta_mfccs = np.pad(delta_mfccs, ((0, 0), (0, max_len - delta_mfccs.shape[1])))
    # 003, l. 283: delta2_mfccs = np.pad(delta2_mfccs, ((0, 0), (0, max_len - delta2_mfccs.shape[1])))
    #   (cut to max_len instead when longer, where np.pad would fail: see _fit_frames)
    pitch = _fit_frames(pitch)
    mfccs = _fit_frames(mfccs)
    delta_mfccs = _fit_frames(delta_mfccs)
    delta2_mfccs = _fit_frames(delta2_mfccs)

    # 003, l. 284: features = np.concatenate((pitch, [energy], [tempo], mfccs.flatten(),
    #                                         delta_mfccs.flatten(), delta2_mfccs.flatten())
    return np.concatenate(
        (pitch, [energy], [tempo], mfccs.flatten(), delta_mfccs.flatten(), delta2_mfccs.flatten())
    )
