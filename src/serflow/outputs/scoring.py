"""Scores of a fitted run: metrics with intervals and the model card, from its saved outputs.

Kept apart from fitting so that interval settings and the selection metric rescore
runs without refitting them.
"""

from __future__ import annotations

import json
from pathlib import Path


def score_files(predictions, cv, model, metrics_out, card_out, n_bootstrap: int, log=None) -> dict:
    """Write a run's ``metrics.json`` and ``model_card.md`` (and a line to ``log``); return the metrics.

    ``predictions``: its out-of-fold predictions (Parquet); ``cv``: the facts
    ``training.gather_run`` wrote; ``model``: its ``model.joblib``.
    """
    import joblib
    import pandas as pd

    from serflow.models.training import dumps_metrics, score_run
    from serflow.outputs.model_card import model_card

    facts = json.loads(Path(cv).read_text(encoding="utf-8"))
    metrics = score_run(pd.read_parquet(predictions), facts, n_bootstrap)
    Path(metrics_out).write_text(dumps_metrics(metrics), encoding="utf-8")
    Path(card_out).write_text(model_card(joblib.load(model), metrics), encoding="utf-8")
    if log:
        ci = metrics["uar_ci95"]
        Path(log).write_text(
            f"{metrics['run']}: {metrics['protocol']}, UAR {metrics['uar']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}], "
            f"accuracy {metrics['accuracy']:.3f} ({n_bootstrap} bootstrap samples)\n",
            encoding="utf-8",
        )
    return metrics
