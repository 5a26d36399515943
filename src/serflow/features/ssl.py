"""Embeddings of a frozen self-supervised speech model from a local transformers checkpoint.

``checkpoint`` is a folder as ``save_pretrained`` writes it (``config.json``, the weights,
``preprocessor_config.json``) of a wav2vec2, HuBERT, WavLM or data2vec-audio model; nothing
is downloaded. Per clip, the hidden states of the chosen ``layers`` (0: the input of the
first transformer layer, L: the last layer's output) are pooled over frames with the chosen
``statistics`` (mean, std). Long clips are cut into windows of ``window_seconds`` whose
frames are pooled together. The cache key holds a hash of the checkpoint's files (not its
path), the layers and statistics. Requires the ``deep`` extra (PyTorch, transformers).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from serflow.features.base import Clip, Extractor

STATISTICS = ("mean", "std")


@functools.lru_cache(maxsize=8)
def _digest(folder: str, stamp: tuple) -> str:
    h = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(folder)).encode() + b"\0")
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()[:16]


def checkpoint_digest(folder: str) -> str:
    """Hash of a checkpoint folder's file names and contents (recomputed when a file changes)."""
    stamp = tuple(
        (str(p), p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(Path(folder).rglob("*"))
        if p.is_file()
    )
    return _digest(str(Path(folder).resolve()), stamp)


@functools.lru_cache(maxsize=2)
def _load(folder: str, digest: str, device: str):
    """(model in eval mode, feature extractor, torch device) of a checkpoint, once per process."""
    try:
        import torch
        from transformers import AutoFeatureExtractor, AutoModel
        from transformers.utils import logging
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            f"the ssl extractor needs PyTorch and transformers: pip install -e '.[deep]' ({err})",
            name=err.name,
        ) from None
    logging.disable_progress_bar()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    where = torch.device(device)
    model = AutoModel.from_pretrained(folder, local_files_only=True).to(where).eval()
    processor = AutoFeatureExtractor.from_pretrained(folder, local_files_only=True)
    return model, processor, where


@dataclass(frozen=True)
class SSLEmbeddings(Extractor):
    """Pooled hidden states of a frozen wav2vec2 / HuBERT / WavLM / data2vec-audio model; group ``ssl``."""

    name: ClassVar[str] = "ssl"
    version: ClassVar[int] = 1
    GROUPS: ClassVar[tuple[str, ...]] = ("ssl",)
    PACKAGES: ClassVar[tuple[str, ...]] = ("torch", "transformers")
    # A base-size model: 0.6-0.8 s per 2-s clip on one core (random weights, measured).
    seconds_per_clip: ClassVar[float] = 2.0
    mem_mb: ClassVar[int] = 4000
    in_all: ClassVar[bool] = False
    gpu: ClassVar[bool] = True

    #: Folder of a transformers checkpoint (``save_pretrained``), read locally.
    checkpoint: str = ""
    #: Hidden-state indices to pool (0..num_hidden_layers); empty: all of them.
    layers: tuple[int, ...] = ()
    statistics: tuple[str, ...] = STATISTICS
    #: Longer clips are cut into windows this long, pooled together.
    window_seconds: float = 20.0
    #: ``auto``: the GPU where there is one, else the CPU; or a torch device name.
    device: str = "auto"

    def _config(self) -> dict:
        return json.loads((Path(self.checkpoint) / "config.json").read_text())

    def check(self) -> None:
        import importlib.util

        missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
        if missing:
            raise ValueError(f"ssl: needs {' and '.join(missing)}: pip install -e '.[deep]'")
        folder = Path(self.checkpoint)
        if not self.checkpoint:
            raise ValueError("ssl: set checkpoint (a local folder written by save_pretrained)")
        for needed in ("config.json", "preprocessor_config.json"):
            if not (folder / needed).is_file():
                raise ValueError(f"ssl: checkpoint {self.checkpoint}: no {needed} (a save_pretrained folder)")
        n = self._config().get("num_hidden_layers")
        if not isinstance(n, int):
            raise ValueError(f"ssl: checkpoint {self.checkpoint}: config.json has no num_hidden_layers")
        bad = [layer for layer in self.layers if not 0 <= layer <= n]
        if bad:
            raise ValueError(f"ssl: layers {bad} outside 0..{n} (the checkpoint's hidden states)")
        if not self.statistics or set(self.statistics) - set(STATISTICS):
            raise ValueError(f"ssl: statistics must be among {', '.join(STATISTICS)}")
        if self.window_seconds <= 0:
            raise ValueError("ssl: window_seconds must be > 0")

    @property
    def model_rate(self) -> int:
        """The checkpoint's sampling rate (clips at another ``sample_rate`` are resampled to it)."""
        pre = json.loads((Path(self.checkpoint) / "preprocessor_config.json").read_text())
        return int(pre.get("sampling_rate", 16000))

    @property
    def chosen_layers(self) -> tuple[int, ...]:
        return self.layers or tuple(range(self._config()["num_hidden_layers"] + 1))

    def cache_params(self) -> dict:
        params = super().cache_params()
        params.pop("device")  # the same values on any device, to float tolerance
        params["checkpoint"] = checkpoint_digest(self.checkpoint)
        params["layers"] = list(self.chosen_layers)
        return params

    def columns(self) -> list[tuple[str, str]]:
        width = self._config()["hidden_size"]
        return [
            (f"ssl_l{layer:02d}_d{d:04d}_{stat}", "ssl")
            for layer in self.chosen_layers
            for stat in self.statistics
            for d in range(width)
        ]

    @property
    def receptive_field(self) -> int:
        """Samples (at the checkpoint's rate) of one output frame of the convolutional encoder."""
        cfg = self._config()
        field, step = 1, 1
        for kernel, stride in zip(cfg.get("conv_kernel", [400]), cfg.get("conv_stride", [1])):
            field += (kernel - 1) * step
            step *= stride
        return field

    @property
    def min_samples(self) -> int:
        return -(-self.receptive_field * self.sample_rate // self.model_rate)

    def compute(self, clip: Clip) -> np.ndarray:
        import torch

        folder = str(Path(self.checkpoint).resolve())
        model, processor, device = _load(folder, checkpoint_digest(self.checkpoint), self.device)
        rate, y = self.model_rate, clip.y
        if clip.sample_rate != rate:
            import soxr

            y = soxr.resample(y, clip.sample_rate, rate, quality="HQ").astype(np.float32)
        field = self.receptive_field
        size = max(field, int(self.window_seconds * rate))
        starts = list(range(0, max(1, y.size - field + 1), size))
        per_layer: dict[int, list[np.ndarray]] = {layer: [] for layer in self.chosen_layers}
        with torch.no_grad():
            for start in starts:
                piece = y[start : start + size]
                if piece.size < field:
                    continue
                inputs = processor(piece, sampling_rate=rate, return_tensors="pt")
                hidden = model(inputs.input_values.to(device), output_hidden_states=True).hidden_states
                for layer in per_layer:
                    per_layer[layer].append(hidden[layer][0].float().cpu().numpy())
        out = []
        for layer in self.chosen_layers:
            frames = np.concatenate(per_layer[layer], axis=0).astype(np.float64)
            for stat in self.statistics:
                out.append(frames.mean(axis=0) if stat == "mean" else frames.std(axis=0))
        return np.concatenate(out).astype(np.float32)
