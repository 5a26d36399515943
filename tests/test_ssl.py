"""The ssl extractor on tiny randomly initialised checkpoints built here (no weights can be had)."""

import shutil

import numpy as np
import pytest
from conftest import cache_files, job_counts, run_snakemake, tone

DEEP = "the ssl extractor needs the deep extra: pip install -e '.[deep]'"
torch = pytest.importorskip("torch", reason=DEEP)
transformers = pytest.importorskip("transformers", reason=DEEP)

from serflow.features import FeatureSpec  # noqa: E402
from serflow.features.base import Clip  # noqa: E402
from serflow.features.ssl import SSLEmbeddings  # noqa: E402

TINY = {
    "hidden_size": 24,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "conv_dim": (16, 16),
    "conv_stride": (5, 4),
    "conv_kernel": (10, 8),
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
}


def tiny_checkpoint(folder, family="wav2vec2", seed=0):
    """A save_pretrained folder of a small random model of ``family``."""
    config_cls, model_cls = {
        "wav2vec2": (transformers.Wav2Vec2Config, transformers.Wav2Vec2Model),
        "hubert": (transformers.HubertConfig, transformers.HubertModel),
        "wavlm": (transformers.WavLMConfig, transformers.WavLMModel),
        "data2vec": (transformers.Data2VecAudioConfig, transformers.Data2VecAudioModel),
    }[family]
    torch.manual_seed(seed)
    model_cls(config_cls(**TINY)).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True).save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("family", ["wav2vec2", "hubert", "wavlm", "data2vec"])
def test_shapes_columns_and_windows(tmp_path, family):
    ext = SSLEmbeddings(checkpoint=tiny_checkpoint(tmp_path / family, family), layers=(0, 2))
    names = ext.names()
    assert len(names) == 2 * 2 * 24 and names[0] == "ssl_l00_d0000_mean" and names[-1] == "ssl_l02_d0023_std"
    assert ext.min_samples == 1 + 9 + 7 * 5  # the convolutions' receptive field
    y = tone(seconds=1.3)
    whole = ext.compute(Clip(y, 16000))
    assert whole.dtype == np.float32 and whole.shape == (len(names),) and np.all(np.isfinite(whole))
    assert np.all(whole[24:48] >= 0)  # the std block of layer 0
    windows = SSLEmbeddings(checkpoint=ext.checkpoint, layers=(0, 2), window_seconds=0.5).compute(
        Clip(y, 16000)
    )
    assert windows.shape == whole.shape and not np.allclose(windows, whole)  # pooled over three windows
    again = ext.compute(Clip(y, 16000))
    np.testing.assert_array_equal(again, whole)  # same computation, same process


def test_cache_key_follows_contents_and_layers_not_the_path(tmp_path):
    folder = tiny_checkpoint(tmp_path / "a")
    key = SSLEmbeddings(checkpoint=folder).cache_key()
    moved = shutil.copytree(folder, tmp_path / "elsewhere")
    assert SSLEmbeddings(checkpoint=str(moved)).cache_key() == key
    assert SSLEmbeddings(checkpoint=folder, layers=(1,)).cache_key() != key
    assert SSLEmbeddings(checkpoint=folder, layers=(0, 1, 2)).cache_key() == key  # all layers, spelled out
    assert SSLEmbeddings(checkpoint=folder, device="cpu").cache_key() == key
    other = tiny_checkpoint(tmp_path / "b", seed=1)  # other weights, same config
    assert SSLEmbeddings(checkpoint=other).cache_key() != key


def test_bad_settings_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="set checkpoint"):
        SSLEmbeddings()
    with pytest.raises(ValueError, match=r"no config\.json"):
        SSLEmbeddings(checkpoint=str(tmp_path))
    folder = tiny_checkpoint(tmp_path / "m")
    with pytest.raises(ValueError, match=r"layers \[3\] outside 0\.\.2"):
        SSLEmbeddings(checkpoint=folder, layers=(3,))


def test_clips_at_another_rate_are_resampled_to_the_checkpoints(tmp_path):
    folder = tiny_checkpoint(tmp_path / "m")
    at_22k = FeatureSpec.from_config({"sample_rate": 22050, "ssl": {"checkpoint": folder}})["ssl"]
    at_16k = SSLEmbeddings(checkpoint=folder)
    a = at_22k.compute(Clip(tone(220.0, seconds=1.0, sr=22050), 22050))
    b = at_16k.compute(Clip(tone(220.0, seconds=1.0, sr=16000), 16000))
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, atol=0.05 * np.abs(b).max())  # resampling differs slightly
    assert at_22k.min_samples == -(-at_16k.min_samples * 22050 // 16000)
    assert at_22k.cache_key() != at_16k.cache_key()


@pytest.mark.slow
def test_ssl_table_run_and_cache_hits_on_rerun(tmp_path):
    folder = tiny_checkpoint(tmp_path / "checkpoint")
    config = {
        "datasets": [{"name": "demo", "adapter": "demo", "n_train": 30, "n_test": 6, "seed": 2}],
        "features": {"ssl": {"checkpoint": folder, "layers": [1, 2]}},
        "feature_sets": {"emb": ["ssl"], "emb_prosody": ["ssl", "prosody"]},
        "feature_tables": ["emb", "emb_prosody"],
        "models": {"lr": {"kind": "logreg"}},
        "runs": [{"feature_sets": ["emb", "emb_prosody"], "models": ["lr"]}],
        "evaluation": {"n_bootstrap": 50},
    }
    run_snakemake(tmp_path, config)
    import pandas as pd

    table = pd.read_parquet(tmp_path / "results/demo/features/emb_prosody.parquet")
    assert sum(c.startswith("ssl_l01_") for c in table.columns) == 48 and "f0_mean" in table.columns
    cached = cache_files(tmp_path / "results/cache/ssl")
    assert len(cached) == 36
    proc = run_snakemake(tmp_path, config, "--forcerun", "extract_features")
    assert job_counts(proc).get("extract_features", 0) >= 1
    assert cache_files(tmp_path / "results/cache/ssl") == cached  # every clip a cache hit


def masked_checkpoint(folder):
    """A tiny wav2vec2 with layer-norm features, which takes an attention mask (as large models do)."""
    torch.manual_seed(0)
    cfg = transformers.Wav2Vec2Config(**TINY, feat_extract_norm="layer", do_stable_layer_norm=True)
    transformers.Wav2Vec2Model(cfg).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(
        sampling_rate=16000, do_normalize=True, return_attention_mask=True
    ).save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("make", [tiny_checkpoint, masked_checkpoint])
def test_batches_of_clips_give_each_clips_own_values(tmp_path, make):
    from conftest import write_wav

    from serflow.features.extraction import extract_shard

    folder = make(tmp_path / "m")
    one, batched = SSLEmbeddings(checkpoint=folder), SSLEmbeddings(checkpoint=folder, batch_size=3)
    assert batched.cache_key() == one.cache_key() and batched.clips_per_call == 3
    lengths = (0.6, 0.8, 0.6, 0.7, 0.6)  # equal lengths batch together even without a mask
    clips = [Clip(tone(150.0 + 40 * i, seconds=s), 16000) for i, s in enumerate(lengths)]
    expected = [one.compute(c) for c in clips]
    got = batched.values(clips)
    for a, b in zip(got, expected):  # padding (with a mask) and batching move float rounding only
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * np.abs(b).max())
    # through a shard: a clip too short for the model fails alone, its batch is redone clip by clip
    paths = [write_wav(tmp_path / f"c{i}.wav", c.y) for i, c in enumerate(clips)]
    paths.insert(2, write_wav(tmp_path / "short.wav", tone(seconds=0.001)))
    ids = [p.stem for p in paths]
    rows, errors, stats = extract_shard(
        batched, ids, paths, [f"{i:064x}" for i in range(len(ids))], tmp_path / "c"
    )
    assert (
        stats.computed == 5 and stats.failed == 1 and errors[2] and "feature extraction failed" in errors[2]
    )
    for k, i in enumerate((0, 1, 3, 4, 5)):
        np.testing.assert_allclose(rows[i], expected[k], rtol=0, atol=1e-4 * np.abs(expected[k]).max())
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        SSLEmbeddings(checkpoint=folder, batch_size=0)


def test_checkpoint_digests_are_kept_between_processes(tmp_path, monkeypatch):
    import json

    from serflow.features import ssl

    store = tmp_path / "digests.json"
    monkeypatch.setenv("SERFLOW_DIGESTS", str(store))
    folder = tiny_checkpoint(tmp_path / "m")
    first = ssl.checkpoint_digest(folder)
    (entry,) = json.loads(store.read_text())
    # another process (no in-memory cache) takes the stored digest without rehashing
    store.write_text(json.dumps({entry: "stored"}))
    ssl._digest.cache_clear()
    assert ssl.checkpoint_digest(folder) == "stored"
    # a changed file changes the stamp, so the folder is hashed again
    (tmp_path / "m" / "config.json").write_text((tmp_path / "m" / "config.json").read_text() + " ")
    ssl._digest.cache_clear()
    assert ssl.checkpoint_digest(folder) not in ("stored", first)
