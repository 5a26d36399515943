"""What the PyTorch model kinds share: the device, the early-stopping split and the training loop."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.utils.class_weight import compute_class_weight


def torch_device(torch, name: str):
    """``auto``: CUDA where there is a GPU, else the CPU; or the named torch device."""
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)


def validation_split(y_idx, groups, fraction: float, random_state: int, origin=None):
    """(rows to fit, rows held out for early stopping) of a training set: about ``fraction``
    of it, grouped by ``groups`` (speakers) where there are enough, else stratified by
    class; nothing held out where neither fits (or ``fraction`` is 0).

    ``origin`` marks augmented copies (``serflow.models.pipeline.copy_origin``): the split
    is made over the clips, copies follow their clip to the fitted side, and none is held out.
    """
    if origin is not None:
        origin = np.asarray(origin)
        clips = np.flatnonzero(origin >= 0)
        fit, held = validation_split(
            np.asarray(y_idx)[clips],
            None if groups is None else np.asarray(groups)[clips],
            fraction,
            random_state,
        )
        fitted_keys = set(origin[clips[fit]].tolist())
        keys = np.where(origin >= 0, origin, -origin - 1)
        return np.flatnonzero(np.isin(keys, list(fitted_keys))), clips[held]
    n = len(y_idx)
    everything = np.arange(n)
    if not fraction or n < 10:
        return everything, everything[:0]
    n_splits = max(2, round(1 / fraction))
    counts = np.bincount(y_idx)
    rows = np.zeros((n, 1))
    if groups is not None and len(set(np.asarray(groups).tolist())) >= n_splits:
        cv = StratifiedGroupKFold(n_splits, shuffle=True, random_state=random_state)
        return next(cv.split(rows, y_idx, np.asarray(groups)))
    if counts[counts > 0].min() >= n_splits:
        cv = StratifiedKFold(n_splits, shuffle=True, random_state=random_state)
        return next(cv.split(rows, y_idx))
    return everything, everything[:0]


def train_epochs(
    torch,
    net,
    opt,
    loss_fn,
    forward,
    targets,
    train,
    val,
    *,
    batch_size,
    max_epochs,
    patience,
    rng,
    min_batch=1,
):
    """Mini-batches of ``train`` rows in a new order each epoch; after each epoch the loss on
    ``val`` (the training loss when ``val`` is empty) decides early stopping, and the best
    epoch's weights are kept. ``forward(rows, training)`` gives logits, ``targets(rows)``
    the classes. Returns the history (a dict per epoch); ``net`` ends in eval mode."""
    best, best_state, stale, history = np.inf, None, 0, []
    for _epoch in range(max_epochs):
        net.train()
        order, total = rng.permutation(train), 0.0
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            if len(batch) < min_batch:
                continue
            opt.zero_grad()
            loss = loss_fn(forward(batch, True), targets(batch))
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        record = {"train_loss": total / len(train)}
        if len(val):
            net.eval()
            with torch.no_grad():
                record["val_loss"] = float(loss_fn(forward(val, False), targets(val)))
        history.append(record)
        watched = record.get("val_loss", record["train_loss"])
        if watched < best - 1e-4:
            best, stale = watched, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            stale += 1
            if stale >= patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return history


def weighted_loss(torch, class_weight, y_idx, n_classes: int, device):
    """Cross-entropy, with ``class_weight`` (e.g. ``balanced``) computed from ``y_idx`` (the rows fitted)."""
    if class_weight is None:
        return torch.nn.CrossEntropyLoss()
    present = np.unique(y_idx)
    w = np.ones(n_classes)
    w[present] = compute_class_weight(class_weight, classes=present, y=y_idx)
    return torch.nn.CrossEntropyLoss(weight=torch.tensor(w, dtype=torch.float32, device=device))


class NetworkAsArrays:
    """Pickles an estimator's fitted network (``net_``) as its parameters (NumPy arrays,
    ``weights_``): the pickle names no PyTorch class and loads without PyTorch."""

    def __getstate__(self):
        state = dict(self.__dict__)
        net = state.pop("net_", None)
        if net is not None:
            state["weights_"] = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
        return state
