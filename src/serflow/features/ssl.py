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
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from serflow.features.base import Clip, Extractor

STATISTICS = ("mean", "std")


def digest_store() -> Path:
    """Where digests of checkpoint folders are kept between processes (``$SERFLOW_DIGESTS``,
    else ``$XDG_CACHE_HOME/serflow`` or ``~/.cache/serflow``)."""
    if os.environ.get("SERFLOW_DIGESTS"):
        return Path(os.environ["SERFLOW_DIGESTS"])
    return (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        / "serflow"
        / "checkpoint-digests.json"
    )


@functools.lru_cache(maxsize=8)
def _digest(folder: str, stamp: tuple) -> str:
    # Every Snakemake start and extraction job needs the key: reading a base-size model's
    # 360 MB each time took about a second, so a digest is stored under the files' names,
    # sizes and modification times, and recomputed when any of them changes.
    store = digest_store()
    entry = hashlib.sha256(json.dumps([folder, stamp]).encode()).hexdigest()
    try:
        known = json.loads(store.read_text())
    except (OSError, ValueError):
        known = {}
    if entry in known:
        return known[entry]
    h = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(folder)).encode() + b"\0")
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    known[entry] = h.hexdigest()[:16]
    try:  # best effort: a read-only home only costs the rehash
        store.parent.mkdir(parents=True, exist_ok=True)
        tmp = store.with_name(f"{store.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known))
        os.replace(tmp, store)
    except OSError:
        pass
    return known[entry]


def checkpoint_digest(folder: str) -> str:
    """Hash of a checkpoint folder's file names and contents (recomputed when a file changes)."""
    stamp = tuple(
        (str(p), p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(Path(folder).rglob("*"))
        if p.is_file()
    )
    return _digest(str(Path(folder).resolve()), stamp)


@functools.lru_cache(maxsize=16)
def _parsed(path: str, mtime_ns: int) -> dict:
    return json.loads(Path(path).read_text())


def _read_json(path: Path) -> dict:
    """A checkpoint's JSON file, parsed once per process and version (read for every clip)."""
    return _parsed(str(path), path.stat().st_mtime_ns)


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
    #: Windows forwarded together (1: one at a time). Batched values agree with unbatched
    #: ones to float rounding only, and batches depend on which clips a job computes.
    batch_size: int = 1

    @property
    def clips_per_call(self) -> int:
        return self.batch_size

    def _config(self) -> dict:
        return _read_json(Path(self.checkpoint) / "config.json")

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
        if self.batch_size < 1:
            raise ValueError("ssl: batch_size must be >= 1")

    @property
    def model_rate(self) -> int:
        """The checkpoint's sampling rate (clips at another ``sample_rate`` are resampled to it)."""
        pre = _read_json(Path(self.checkpoint) / "preprocessor_config.json")
        return int(pre.get("sampling_rate", 16000))

    @property
    def chosen_layers(self) -> tuple[int, ...]:
        return self.layers or tuple(range(self._config()["num_hidden_layers"] + 1))

    def cache_params(self) -> dict:
        params = super().cache_params()
        params.pop("device")  # the same values on any device, to float tolerance
        params.pop("batch_size")  # and in any batch
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

    def _pieces(self, clip: Clip) -> list[np.ndarray]:
        """The clip at the checkpoint's rate, cut into windows of ``window_seconds``."""
        rate, y = self.model_rate, clip.y
        if clip.sample_rate != rate:
            import soxr

            y = soxr.resample(y, clip.sample_rate, rate, quality="HQ").astype(np.float32)
        field = self.receptive_field
        size = max(field, int(self.window_seconds * rate))
        starts = range(0, max(1, y.size - field + 1), size)
        return [y[s : s + size] for s in starts if y[s : s + size].size >= field]

    def _hidden(self, pieces: list[np.ndarray]) -> list[dict[int, np.ndarray]]:
        """Per piece, layer -> hidden states of its frames. Up to ``batch_size`` pieces go
        through the model together: padded, with an attention mask, where the checkpoint
        takes one (``feat_extract_norm: layer``), else only pieces of equal length."""
        import torch

        folder = str(Path(self.checkpoint).resolve())
        model, processor, device = _load(folder, checkpoint_digest(self.checkpoint), self.device)
        masked = self._config().get("feat_extract_norm") == "layer"
        batches: list[list[int]] = []
        for i in sorted(range(len(pieces)), key=lambda i: len(pieces[i])):
            last = batches[-1] if batches else None
            if last and len(last) < self.batch_size and (masked or len(pieces[last[0]]) == len(pieces[i])):
                last.append(i)
            else:
                batches.append([i])
        out: list = [None] * len(pieces)
        with torch.no_grad():
            for batch in batches:
                inputs = processor(
                    [pieces[i] for i in batch],
                    sampling_rate=self.model_rate,
                    return_tensors="pt",
                    padding=True,
                    return_attention_mask=masked,
                )
                mask = {"attention_mask": inputs.attention_mask.to(device)} if masked else {}
                values = inputs.input_values.to(device)
                hidden = model(values, output_hidden_states=True, **mask).hidden_states
                lengths = torch.tensor([len(pieces[i]) for i in batch])
                frames = model._get_feat_extract_output_lengths(lengths)
                for row, i in enumerate(batch):
                    n = int(frames[row])
                    out[i] = {k: hidden[k][row, :n].float().cpu().numpy() for k in self.chosen_layers}
        return out

    def _pool(self, hidden: list[dict[int, np.ndarray]]) -> np.ndarray:
        out = []
        for layer in self.chosen_layers:
            frames = np.concatenate([h[layer] for h in hidden], axis=0).astype(np.float64)
            for stat in self.statistics:
                out.append(frames.mean(axis=0) if stat == "mean" else frames.std(axis=0))
        return np.concatenate(out).astype(np.float32)

    def compute(self, clip: Clip) -> np.ndarray:
        return self._pool(self._hidden(self._pieces(clip)))

    def values(self, clips: list[Clip]) -> list[np.ndarray]:
        """``value`` of each clip, their windows forwarded in batches of ``batch_size``."""
        pieces = [self._pieces(self.prepare(c)) for c in clips]
        hidden = self._hidden([p for ps in pieces for p in ps])
        out, start = [], 0
        for ps in pieces:
            out.append(self._pool(hidden[start : start + len(ps)]))
            start += len(ps)
        return out
