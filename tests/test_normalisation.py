"""``Normalisation``: one object from the folds to the saved model, ``serflow predict`` and ``serve``."""

import numpy as np
import pandas as pd
import pytest
from conftest import PROBA_ATOL

from serflow.models.normalisation import Normalisation, speaker_standardize, standardize
from serflow.models.training import evaluate_run, fit_final, predict

MODES = {
    "none": {},
    "speaker": {"speaker_norm": True},
    "domain": {"domain_norm": True},
    "speaker+domain": {"speaker_norm": True, "domain_norm": True},
}


def table(n=150, n_test=30, estimated=False, seed=0):
    """Labelled clips of 5 speakers, then an unlabelled test split of 2 other, louder speakers."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    speaker = np.where(np.arange(n) < n - n_test, np.arange(n) % 5, 5 + np.arange(n) % 2)
    x = (
        rng.normal(size=(n, 8))
        + np.eye(3)[y] @ rng.normal(size=(3, 8))
        + rng.normal(size=(7, 8))[speaker] * 2
    )
    x[n - n_test :] = x[n - n_test :] * 1.5 + 3.0
    t = pd.DataFrame(x, columns=[f"f{i}" for i in range(8)])
    t.insert(0, "id", [f"c{i:03d}" for i in range(n)])
    t.insert(1, "label", np.where(np.arange(n) < n - n_test, np.array(["a", "b", "c"])[y], None))
    t.insert(2, "speaker", [f"s{s}" for s in speaker])
    t.insert(3, "split", np.where(np.arange(n) < n - n_test, "train", "test"))
    t.attrs["speakers_estimated"] = estimated
    return t, [f"f{i}" for i in range(8)]


@pytest.mark.parametrize("estimated", [False, True], ids=["given speakers", "estimated speakers"])
@pytest.mark.parametrize("mode", list(MODES))
def test_predict_on_the_unlabelled_clips_gives_the_workflows_test_predictions(mode, estimated):
    t, cols = table(estimated=estimated)
    model = {"kind": "logreg", "params": {"C": 0.5}, **MODES[mode]}
    bundle, test = fit_final(t, cols, model)
    norm = bundle["normalisation"]
    assert isinstance(norm, Normalisation) and norm.domain == ("domain" in mode)
    if estimated and "speaker" in mode:  # the inner folds chose per group or none
        assert norm.applied.endswith("(chosen by the inner folds)")
    got = predict(bundle, t[t["label"].isna()])
    assert list(got["id"]) == list(test["id"]) and list(got["prediction"]) == list(test["prediction"])
    proba = [c for c in test.columns if c.startswith("proba_")]
    np.testing.assert_allclose(got[proba].to_numpy(), test[proba].to_numpy(), rtol=0, atol=PROBA_ATOL)


def test_the_folds_record_what_was_applied():
    t, cols = table()
    _, m = evaluate_run(
        t, cols, {"kind": "logreg", "speaker_norm": True, "domain_norm": True}, {"n_bootstrap": 20}
    )
    assert m["speaker_norm"] == "per speaker" and m["model"]["domain_norm"] is True
    from serflow.outputs.runs import normalisation

    assert normalisation(m) == "per speaker, then test domain"
    _, m = evaluate_run(
        t.assign(speaker=None), cols, {"kind": "logreg", "speaker_norm": True}, {"n_bootstrap": 20}
    )
    assert m["speaker_norm"].startswith("none (requested, but not every clip has a speaker")


def test_new_clips_per_speaker_with_a_fallback_or_a_refusal():
    t, cols = table()
    bundle, _ = fit_final(t, cols, {"kind": "logreg", "speaker_norm": True})
    norm = bundle["normalisation"]
    x = t[cols].to_numpy()[:8]
    speakers = ["s0"] * 5 + ["s1"] * 2 + [None]
    out, notes, errors = norm.transform(x, speakers, "refuse", min_clips=5)
    np.testing.assert_allclose(out[:5], speaker_standardize(x[:5], ["s0"] * 5), rtol=0, atol=1e-12)
    assert notes[:5] == ["per speaker (5 clips)"] * 5 and errors[:5] == [None] * 5
    assert "speaker 's1' has 2 clip(s), fewer than 5" in errors[5] and "no speaker given" in errors[7]
    out, notes, errors = norm.transform(x, speakers, "global", min_clips=5)
    assert errors == [None] * 8 and notes[7] == "global scaling: no speaker given"
    raw = t.loc[t["label"].notna(), cols].to_numpy()
    np.testing.assert_allclose(out[7], (x[7] - raw.mean(axis=0)) / raw.std(axis=0), rtol=1e-12)
    with pytest.raises(ValueError, match="fallback must be one of"):
        norm.transform(x, speakers, "ignore")


def test_a_test_domain_needs_enough_clips():
    t, cols = table()
    bundle, _ = fit_final(t, cols, {"kind": "logreg", "domain_norm": True})
    norm = bundle["normalisation"]
    x = t[cols].to_numpy()[-6:]
    out, notes, _ = norm.transform(x, min_clips=5)
    np.testing.assert_allclose(out, standardize(x), rtol=0, atol=1e-12)
    assert notes == ["test domain (6 clips)"] * 6
    out, notes, _ = norm.transform(x[:3], min_clips=5)
    np.testing.assert_allclose(out, norm.training_scaled(x[:3]), rtol=0, atol=1e-12)
    assert notes[0] == "training statistics: fewer than 5 clips to form a test domain"


def test_bundles_saved_before_the_object_still_load():
    old = {
        "speaker_norm": True,
        "speaker_norm_applied": "per speaker",
        "feature_mean": np.zeros(2),
        "feature_std": np.ones(2),
    }
    norm = Normalisation.from_bundle(old)
    assert norm.speaker and not norm.domain and norm.describe() == "per speaker"
    _, notes, errors = norm.transform(np.ones((1, 2)), [None], "global")
    assert notes == ["global scaling: no speaker given"] and errors == [None]
