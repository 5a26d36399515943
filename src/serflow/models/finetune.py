"""Fine-tuning a pretrained speech encoder on the clips' waveforms (seed 003's route).

A wav2vec2 / HuBERT / WavLM / data2vec-audio checkpoint folder (``save_pretrained``)
gets an audio-classification head (``AutoModelForAudioClassification``: a projection,
mean pooling over frames, a linear layer) and is trained inside each training set it
is given, on a ``waveform`` table. The convolutional feature encoder stays frozen
(``freeze_feature_encoder``); ``freeze_encoder`` also freezes the transformer, leaving the
head, and with ``layer_weighting`` a learned weighting of every layer's output, to train
(a SUPERB-style probe). Early stopping on a speaker-grouped part of the training set, as
the cnn kind. Practical on a GPU; on a CPU only small models or few steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from serflow.models.neural import NetworkAsArrays, torch_device, train_epochs, validation_split, weighted_loss


def _libraries():
    try:
        import torch
        import transformers
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            f"the finetune model kind needs PyTorch and transformers: pip install -e '.[deep]' ({err})",
            name=err.name,
        ) from None
    transformers.utils.logging.set_verbosity_error()  # the new head's "newly initialized" notice
    transformers.utils.logging.disable_progress_bar()
    return torch, transformers


def sample_lengths(x: np.ndarray) -> np.ndarray:
    """Real samples per row: up to the last non-zero one (the table pads with zeros)."""
    used = x != 0
    last = x.shape[1] - np.argmax(used[:, ::-1], axis=1)
    return np.where(used.any(axis=1), last, 1).astype(np.int64)


class SpeechFineTuner(NetworkAsArrays, ClassifierMixin, BaseEstimator):
    """A pretrained speech encoder with a classification head, fine-tuned on waveforms.

    ``checkpoint``: the local folder. ``n_frames``: the ``waveform`` table's ``pad_frames``.
    ``learning_rate`` for the encoder, ``head_learning_rate`` for the head (and layer
    weights); AdamW. Rows are normalised per clip over their real samples where the
    checkpoint's feature extractor does so (``do_normalize``).
    """

    def __init__(
        self,
        checkpoint: str = "",
        n_frames: int = 0,
        freeze_encoder: bool = False,
        layer_weighting: bool = False,
        learning_rate: float = 3e-5,
        head_learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        batch_size: int = 8,
        max_epochs: int = 10,
        patience: int = 3,
        validation_fraction: float = 0.2,
        class_weight: str | None = None,
        random_state: int = 0,
        threads: int = 1,
        device: str = "auto",
    ):
        self.checkpoint = checkpoint
        self.n_frames = n_frames
        self.freeze_encoder = freeze_encoder
        self.layer_weighting = layer_weighting
        self.learning_rate = learning_rate
        self.head_learning_rate = head_learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.class_weight = class_weight
        self.random_state = random_state
        self.threads = threads
        self.device = device

    def _check(self, x):
        folder = Path(self.checkpoint)
        if not self.checkpoint or not (folder / "config.json").is_file():
            raise ValueError(f"finetune: checkpoint {self.checkpoint!r} is not a save_pretrained folder")
        if self.n_frames <= 0 or x.shape[1] % self.n_frames:
            raise ValueError(
                f"finetune: {x.shape[1]} columns are not n_frames={self.n_frames} frames of samples:"
                " use a feature set of the waveform group only, with pad_frames equal to n_frames"
            )

    def _inputs(self, torch, x):
        """(input values, attention mask or None) of rows: normalised over their real samples."""
        lengths = sample_lengths(x)
        real = np.arange(x.shape[1])[None, :] < lengths[:, None]
        if self.normalize_:
            mean = (x * real).sum(axis=1) / lengths
            var = (((x - mean[:, None]) * real) ** 2).sum(axis=1) / lengths
            x = (x - mean[:, None]) / np.sqrt(var[:, None] + 1e-7) * real
        values = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        mask = torch.from_numpy(real.astype(np.int64)) if self.attention_mask_ else None
        return values, mask

    def _net(self):
        torch, transformers = _libraries()
        if getattr(self, "net_", None) is None:
            config = getattr(transformers, self.config_class_).from_dict(self.config_)
            net = getattr(transformers, self.architecture_)(config)
            net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self.weights_.items()})
            self.net_ = net.eval()
        return self.net_

    def fit(self, x, y, groups=None, origin=None):
        # transformers draws wav2vec2's time masks (mask_time_prob) from NumPy's global RNG
        saved = np.random.get_state()
        np.random.seed(self.random_state)
        try:
            return self._fit(x, y, groups, origin)
        finally:
            np.random.set_state(saved)

    def _fit(self, x, y, groups, origin=None):
        torch, transformers = _libraries()
        x = np.asarray(x, dtype=np.float64)
        self._check(x)
        torch.manual_seed(self.random_state)
        torch.set_num_threads(max(1, int(self.threads)))
        rng = np.random.default_rng(self.random_state)
        self.classes_, y_idx = np.unique(np.asarray(y), return_inverse=True)
        train, val = validation_split(y_idx, groups, self.validation_fraction, self.random_state, origin)
        self.split_ = (train, val)
        pre = json.loads((Path(self.checkpoint) / "preprocessor_config.json").read_text())
        self.normalize_ = bool(pre.get("do_normalize", True))
        self.attention_mask_ = bool(pre.get("return_attention_mask", False))

        net = transformers.AutoModelForAudioClassification.from_pretrained(
            self.checkpoint,
            num_labels=len(self.classes_),
            use_weighted_layer_sum=self.layer_weighting,
            local_files_only=True,
            # LayerDrop leaves dropped layers out of the hidden states a layer weighting sums
            **({"layerdrop": 0.0} if self.layer_weighting else {}),
        )
        self.config_class_, self.architecture_ = type(net.config).__name__, type(net).__name__
        self.config_ = net.config.to_dict()
        net.freeze_feature_encoder()
        if self.freeze_encoder:
            net.freeze_base_model()
        where = torch_device(torch, self.device)
        net.to(where)
        trained = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
        body = [p for n, p in trained if n.startswith(net.base_model_prefix)]
        head = [p for n, p in trained if not n.startswith(net.base_model_prefix)]
        steps = [{"params": head, "lr": self.head_learning_rate}]
        if body:
            steps.append({"params": body, "lr": self.learning_rate})
        opt = torch.optim.AdamW(steps, weight_decay=self.weight_decay)
        loss_fn = weighted_loss(torch, self.class_weight, y_idx[train], len(self.classes_), where)
        values, mask = self._inputs(torch, x)
        yt = torch.from_numpy(y_idx.astype(np.int64))

        def logits(rows):
            m = mask[rows].to(where) if mask is not None else None
            return net(values[rows].to(where), attention_mask=m).logits

        self.history_ = train_epochs(
            torch,
            net,
            opt,
            loss_fn,
            lambda rows, training: logits(rows),
            lambda rows: yt[rows].to(where),
            train,
            val,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            patience=self.patience,
            rng=rng,
        )
        self.net_ = net.cpu().eval()  # predictions (and the saved weights) on the CPU
        self.weights_ = None
        self.n_epochs_ = len(self.history_)
        return self

    def predict_proba(self, x):
        torch, _ = _libraries()
        torch.set_num_threads(max(1, int(self.threads)))
        x = np.asarray(x, dtype=np.float64)
        values, mask = self._inputs(torch, x)
        net, out = self._net(), []
        with torch.no_grad():
            for start in range(0, len(x), 16):
                rows = slice(start, start + 16)
                m = mask[rows] if mask is not None else None
                out.append(torch.softmax(net(values[rows], attention_mask=m).logits, dim=1).numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, len(self.classes_)))

    def predict(self, x):
        return self.classes_[self.predict_proba(x).argmax(axis=1)]
