"""A convolutional network on padded frame-level features (log-mel), as a scikit-learn classifier.

The input is a feature table's ``frames`` columns with ``pad_frames`` set: per clip,
``n_dims`` rows (mel bands, then any other stream) of ``n_frames`` frames, flattened per
dimension and zero-padded. A frame whose values are all exactly 0 is padding; the network
masks it, so a clip's prediction does not depend on how much padding it has. Each dimension
is standardised with the training clips' real frames (fitted here, not by a scaler in front).

Training happens inside whatever training set it is given (an outer fold, an inner fold of a
search, the final refit): a part of it, grouped by speaker when ``groups`` are given, is held
out for early stopping; the weights of the best epoch on that part are kept.
Requires the ``deep`` extra (PyTorch).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from serflow.models.neural import NetworkAsArrays, torch_device, train_epochs, validation_split, weighted_loss

POOLINGS = ("mean", "attention")
OPTIMIZERS = ("adam", "sgd")


def _torch():
    try:
        import torch
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "the cnn model kind needs PyTorch: pip install -e '.[deep]'", name=err.name
        ) from None
    return torch


def frame_lengths(x: np.ndarray, n_frames: int) -> np.ndarray:
    """Real (non-padding) frames per row of a flattened (rows, dims * n_frames) matrix."""
    cube = x.reshape(len(x), -1, n_frames)
    used = np.any(cube != 0, axis=1)
    last = n_frames - np.argmax(used[:, ::-1], axis=1)
    return np.where(used.any(axis=1), last, 1).astype(np.int64)


def _network(torch, n_dims, n_labels, channels, kernel_size, dropout, pooling):
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            blocks, c_in = [], 1
            for c_out in channels:
                blocks += [
                    nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2),
                    nn.BatchNorm2d(c_out),
                    nn.ReLU(),
                    nn.MaxPool2d(2, ceil_mode=True),
                    nn.Dropout(dropout),
                ]
                c_in = c_out
            self.blocks = nn.Sequential(*blocks)
            height = n_dims
            for _ in channels:
                height = -(-height // 2)
            self.width = c_in * height
            self.attention = nn.Linear(self.width, 1) if pooling == "attention" else None
            self.head = nn.Linear(self.width, n_labels)

        def forward(self, x, lengths):
            h = self.blocks(x.unsqueeze(1))  # (batch, channels, dims', frames')
            h = h.flatten(1, 2).transpose(1, 2)  # (batch, frames', width)
            steps = h.shape[1]
            shrunk = lengths
            for _ in channels:
                shrunk = torch.div(shrunk + 1, 2, rounding_mode="floor")
            mask = torch.arange(steps, device=h.device)[None, :] < shrunk.clamp(min=1)[:, None]
            if self.attention is not None:
                score = self.attention(h).squeeze(-1).masked_fill(~mask, float("-inf"))
                weight = torch.softmax(score, dim=1)
            else:
                weight = mask.float() / mask.sum(dim=1, keepdim=True)
            return self.head((h * weight.unsqueeze(-1)).sum(dim=1))  # logits

    return Net()


class LogMelCNN(NetworkAsArrays, ClassifierMixin, BaseEstimator):
    """Convolution blocks (conv, batch norm, ReLU, 2x2 max-pool, dropout) over (dims x frames),
    masked pooling over time (mean or attention), a linear layer to logits, cross-entropy.

    ``n_frames`` is the table's ``pad_frames``. ``spec_augment`` = (frequency-mask width,
    time-mask width), one mask of each drawn per clip and batch in training (0 disables).
    ``class_weight='balanced'`` weights the loss. ``threads`` binds PyTorch's threads.
    ``device``: where ``fit`` trains (``auto``: CUDA if available); predictions run on the CPU.
    """

    def __init__(
        self,
        n_frames: int = 0,
        channels: tuple[int, ...] = (16, 32, 64),
        kernel_size: int = 3,
        dropout: float = 0.2,
        pooling: str = "attention",
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        batch_size: int = 32,
        max_epochs: int = 40,
        patience: int = 8,
        validation_fraction: float = 0.2,
        spec_augment: tuple[int, int] = (8, 20),
        class_weight: str | None = None,
        random_state: int = 0,
        threads: int = 1,
        device: str = "auto",
    ):
        self.n_frames = n_frames
        self.channels = channels
        self.kernel_size = kernel_size
        self.dropout = dropout
        self.pooling = pooling
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.spec_augment = spec_augment
        self.class_weight = class_weight
        self.random_state = random_state
        self.threads = threads
        self.device = device

    def _check(self, x):
        if self.n_frames <= 0:
            raise ValueError("cnn: n_frames must be the feature table's frames pad_frames (> 0)")
        if x.shape[1] % self.n_frames:
            raise ValueError(
                f"cnn: {x.shape[1]} feature columns are not dims x n_frames={self.n_frames}:"
                " use a feature set of frames groups only, with pad_frames equal to n_frames"
            )
        if self.pooling not in POOLINGS:
            raise ValueError(f"cnn: pooling must be one of {POOLINGS}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"cnn: optimizer must be one of {OPTIMIZERS}")

    def _cube(self, torch, x):
        """(standardised (rows, dims, frames) tensor with padding at 0, lengths tensor)."""
        lengths = frame_lengths(x, self.n_frames)
        cube = x.reshape(len(x), -1, self.n_frames)
        cube = (cube - self.mean_[None, :, None]) / self.scale_[None, :, None]
        real = np.arange(self.n_frames)[None, :] < lengths[:, None]
        cube = (cube * real[:, None, :]).astype(np.float32)
        return torch.from_numpy(np.ascontiguousarray(cube)), torch.from_numpy(lengths)

    def __setstate__(self, state):
        self.__dict__.update(state)

    def _net(self, torch):
        if getattr(self, "net_", None) is None:
            net = self._build(torch, len(self.mean_))
            net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self.weights_.items()})
            net.eval()
            self.net_ = net
        return self.net_

    def _build(self, torch, n_dims):
        return _network(
            torch,
            n_dims,
            len(self.classes_),
            tuple(self.channels),
            self.kernel_size,
            self.dropout,
            self.pooling,
        )

    def fit(self, x, y, groups=None, origin=None):
        torch = _torch()
        x = np.asarray(x, dtype=np.float64)
        self._check(x)
        torch.manual_seed(self.random_state)
        torch.set_num_threads(max(1, int(self.threads)))
        rng = np.random.default_rng(self.random_state)
        self.classes_, y_idx = np.unique(np.asarray(y), return_inverse=True)
        train, val = validation_split(y_idx, groups, self.validation_fraction, self.random_state, origin)
        self.split_ = (train, val)  # rows fitted, rows held out for early stopping

        cube = x[train].reshape(len(train), -1, self.n_frames)
        real = np.arange(self.n_frames)[None, :] < frame_lengths(x[train], self.n_frames)[:, None]
        frames = cube.transpose(0, 2, 1)[real]  # (real frames, dims)
        self.mean_ = frames.mean(axis=0)
        self.scale_ = np.where(frames.std(axis=0) > 0, frames.std(axis=0), 1.0)
        where = torch_device(torch, self.device)
        xt, lt = (t.to(where) for t in self._cube(torch, x))
        yt = torch.from_numpy(y_idx.astype(np.int64)).to(where)

        net = self._build(torch, xt.shape[1]).to(where)
        if self.optimizer == "adam":
            opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        else:
            opt = torch.optim.SGD(
                net.parameters(),
                lr=self.learning_rate,
                momentum=self.momentum,
                weight_decay=self.weight_decay,
            )
        loss_fn = weighted_loss(torch, self.class_weight, y_idx[train], len(self.classes_), where)

        def forward(rows, training):
            xb = self._augment(torch, xt[rows].clone(), lt[rows].cpu(), rng) if training else xt[rows]
            return net(xb, lt[rows])

        self.history_ = train_epochs(
            torch,
            net,
            opt,
            loss_fn,
            forward,
            lambda rows: yt[rows],
            train,
            val,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            patience=self.patience,
            rng=rng,
            min_batch=2,  # batch norm needs two rows
        )
        self.net_ = net.cpu()  # predictions (and the saved weights) are computed on the CPU
        self.weights_ = None
        self.n_epochs_ = len(self.history_)
        return self

    def _augment(self, torch, xb, lengths, rng):
        f_width, t_width = self.spec_augment or (0, 0)
        n_dims = xb.shape[1]
        for i in range(len(xb)):
            if f_width:
                w = int(rng.integers(0, f_width + 1))
                f0 = int(rng.integers(0, max(1, n_dims - w)))
                xb[i, f0 : f0 + w, :] = 0
            if t_width:
                w = int(rng.integers(0, t_width + 1))
                t0 = int(rng.integers(0, max(1, int(lengths[i]) - w)))
                xb[i, :, t0 : t0 + w] = 0
        return xb

    def predict_proba(self, x):
        torch = _torch()
        torch.set_num_threads(max(1, int(self.threads)))
        x = np.asarray(x, dtype=np.float64)
        self._check(x)
        xt, lt = self._cube(torch, x)
        out = []
        with torch.no_grad():
            for start in range(0, len(xt), 256):
                logits = self._net(torch)(xt[start : start + 256], lt[start : start + 256])
                out.append(torch.softmax(logits, dim=1).numpy().astype(np.float64))
        return np.concatenate(out) if out else np.zeros((0, len(self.classes_)))

    def predict(self, x):
        return self.classes_[self.predict_proba(x).argmax(axis=1)]
