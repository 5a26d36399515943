"""The job plan as a library: built from a config without Snakemake, every cross-check tested."""

import copy
import math

import pytest
import yaml
from conftest import REPO, tone, write_wav

from serflow.plan import PlanError, build_plan, read_all_entries

with open(REPO / "workflow/schemas/config.schema.yaml") as f:
    SCHEMA = yaml.safe_load(f)


def config(**over):
    """A config as Snakemake's validation leaves it (schema defaults filled in)."""
    from snakemake.utils import validate

    cfg = {"datasets": [{"name": "demo", "adapter": "demo", "n_train": 40, "n_test": 8}], **over}
    cfg = copy.deepcopy(cfg)
    validate(cfg, str(REPO / "workflow/schemas/config.schema.yaml"))
    return cfg


CNN = {
    "features": {"frames": {"pad_frames": 50}},
    "feature_sets": {"logmel": ["frames_mel"]},
    "models": {"c": {"kind": "cnn", "params": {"n_frames": 50}}, "lr": {"kind": "logreg"}},
    "runs": [{"feature_sets": ["logmel"], "models": ["c", "lr"]}],
}


def test_default_plan():
    plan = build_plan(config(extraction={"shards": 3}))
    ds = plan.datasets["demo"]
    assert ds.features.names == ["descriptors"] and ds.generated
    assert list(ds.tables) == ["prosody", "mfcc", "mfcc_deltas", "spectral", "mel", "all"]
    models = ["majority", "svc", "logreg", "random_forest", "xgboost", "mlp", "logreg_spk"]
    assert ds.run_names == [f"{fs}-{m}" for fs in ("prosody", "mfcc_deltas", "all") for m in models]
    assert ds.table_extractors("all") == ["descriptors"]
    assert plan.shards == ["000", "001", "002"]
    assert ds.evaluation["metric"] == "uar" and ds.on_bad_file == "reject"


@pytest.mark.parametrize("n_train, shards", [(40, 2), (1440, 3), (20000, 32)])
def test_auto_shards_follow_the_corpus_not_the_machine(n_train, shards, tmp_path):
    from serflow.plan import read_all_entries

    cfg = config(datasets=[{"name": "demo", "adapter": "demo", "n_train": n_train, "n_test": 0}])
    plan = build_plan(cfg)
    read_all_entries(plan, results=str(tmp_path))  # not a demo corpus the checkout ran before
    assert len(plan.shards) == shards


def test_tables_join_only_the_extractors_their_groups_need():
    cfg = config(
        features={"extended": True, "frames": {"streams": ["mel", "f0"]}, "signal": True},
        feature_sets={"voice": ["voice_quality", "prosody"], "mel_frames": ["frames_mel"]},
        feature_tables=["prosody", "voice", "mel_frames", "all"],
        runs=[{"feature_sets": ["voice"], "models": ["logreg"]}],
    )
    ds = build_plan(cfg).datasets["demo"]
    assert ds.features.names == ["descriptors", "extended", "frames", "signal"]
    assert ds.table_extractors("prosody") == ["descriptors"]
    assert ds.table_extractors("voice") == ["descriptors", "extended"]
    assert ds.table_extractors("mel_frames") == ["frames"]
    assert ds.table_extractors("all") == ["descriptors", "extended", "frames", "signal"]
    assert ds.features.min_samples == 2048  # the signal extractor's onset analysis
    # padded frames are a network's input: named by their group, not part of all
    cfg["features"]["frames"]["pad_frames"] = 40
    ds = build_plan(cfg).datasets["demo"]
    assert ds.table_extractors("all") == ["descriptors", "extended", "signal"]
    assert ds.table_extractors("mel_frames") == ["frames"]


def test_per_dataset_features_merge_over_the_top_level():
    cfg = config(
        features={"n_mfcc": 20, "extended": True},
        datasets=[
            {"name": "a", "adapter": "demo"},
            {"name": "b", "adapter": "demo", "features": {"n_mfcc": 8, "extended": False}},
        ],
    )
    plan = build_plan(cfg)
    a, b = plan.datasets["a"].features, plan.datasets["b"].features
    assert a.names == ["descriptors", "extended"] and b.names == ["descriptors"]
    assert a["descriptors"].n_mfcc == 20 and b["descriptors"].n_mfcc == 8


@pytest.mark.parametrize(
    "over, message",
    [
        (
            {"feature_tables": ["compare"]},
            "dataset 'demo': feature set 'compare' needs the group 'compare': "
            "set features: {opensmile: [ComParE_2016]}",
        ),
        (
            {"feature_sets": {"r": ["rhythm"]}, "feature_tables": ["r"]},
            "feature set 'r' needs the group 'rhythm': set features: {extended: true}",
        ),
        (
            {"feature_sets": {"m": ["frames_mel"]}, "feature_tables": ["m"]},
            "needs the group 'frames_mel': set features: {frames: {streams: [mel]}}",
        ),
        (
            {"features": {"frames": {"streams": ["f0"]}}, "feature_sets": {"m": ["frames_mel"]},
             "feature_tables": ["m"]},
            "needs the group 'frames_mel'",
        ),
        ({"feature_tables": ["nope"]}, "'nope' is neither built in"),
        ({"runs": [{"feature_sets": ["nope"], "models": ["svc"]}]}, "feature set 'nope' is not defined"),
        ({"runs": [{"feature_sets": ["prosody"], "models": ["nope"]}]}, "model 'nope' is not defined"),
        (
            {
                "models": {"pick": {"kind": "logreg", "feature_groups": [["mfcc"], ["prosody"]]}},
                "runs": [{"feature_sets": ["prosody"], "models": ["pick"]}],
            },
            "run 'prosody-pick': feature_groups ['mfcc'] name ['mfcc'], "
            "which the table 'prosody' does not hold",
        ),
        ({"features": {"extended": {"contrast_bands": 9}}}, "features: extended: contrast_fmin"),
        ({"features": {"descriptors": False}}, "every extractor is off"),
        (
            {"datasets": [{"name": "d", "adapter": "demo"}, {"name": "d", "adapter": "demo"}]},
            "names must be unique",
        ),
        (
            {"features": {"sample_rate": 16000, "signal": {"sample_rate": 22050}}},
            "extractors disagree on sample_rate",
        ),
        (
            {"models": {"c": {"kind": "cnn", "params": {"n_frames": 50}}},
             "runs": [{"feature_sets": ["mel"], "models": ["c"]}]},
            "run 'mel-c': a cnn model takes a table of frames groups only",
        ),
        (
            {**CNN, "features": {"frames": {"pad_frames": 40}}},
            "params: n_frames (50) must equal features: frames: pad_frames (40)",
        ),
        (
            {**CNN, "models": {"c": {"kind": "cnn", "params": {"n_frames": 50}, "speaker_norm": True},
                   "lr": {"kind": "logreg"}}},
            "a cnn model standardises its frames itself: speaker_norm and domain_norm are not supported",
        ),
    ],
)  # fmt: skip
def test_cross_checks_name_the_key(over, message):
    with pytest.raises(PlanError) as err:
        build_plan(config(**over))
    assert message in str(err.value)


def test_a_cnn_run_beside_table_models_plans():
    ds = build_plan(config(**CNN)).datasets["demo"]
    assert ds.run_names == ["logmel-c", "logmel-lr"]
    assert ds.table_extractors("logmel") == ["frames"]


def test_only_deep_jobs_ask_for_the_configs_gpus():
    plan = build_plan(config(**CNN, gpus=2))
    assert plan.train_gpus("c") == 2 and plan.train_gpus("lr") == 0
    assert plan.extract_gpus("demo", "frames") == 0  # frames are cheap: no GPU
    from serflow.features import REGISTRY

    assert [name for name, cls in REGISTRY.items() if cls.gpu] == ["ssl"]
    assert build_plan(config(**CNN)).train_gpus("c") == 0  # the default: nothing asks


def test_each_adapter_takes_only_its_own_keys():
    from serflow.corpus.adapters import ADAPTERS

    cfg = config()
    cfg["datasets"] = [{"name": "e", "adapter": "emodb", "root": "x", "table": "t.csv"}]  # past the schema
    with pytest.raises(PlanError, match="key 'table' is not a setting of the 'emodb' adapter"):
        build_plan(cfg)
    with pytest.raises(Exception, match="'table' was unexpected"):
        config(datasets=[{"name": "e", "adapter": "emodb", "root": "x", "table": "t.csv"}])
    assert set(ADAPTERS["demo"].keys) >= {"n_train", "seed"}


def test_entries_are_read_apart_from_the_plan(tmp_path):
    write_wav(tmp_path / "a" / "x.wav", tone(seconds=0.3))
    (tmp_path / "t.csv").write_text("path,label\na/x.wav,calm\nmissing.wav,calm\n")
    plan = build_plan(config(datasets=[{"name": "c", "adapter": "csv", "table": str(tmp_path / "t.csv")}]))
    read_all_entries(plan)
    entries = plan.datasets["c"].entries
    assert [e.id for e in entries] == ["a/x", "missing"]
    (tmp_path / "t.csv").write_text("path,label\n,calm\n")
    with pytest.raises(PlanError, match=r"dataset 'c': .*t.csv, line 2: empty 'path'"):
        read_all_entries(plan)


def test_demo_entries_are_known_before_the_corpus_is_written(tmp_path):
    from serflow.corpus.adapters import read_entries
    from serflow.corpus.demo import generate_demo_corpus

    cfg = {"name": "demo", "adapter": "demo", "n_train": 12, "n_test": 4, "seed": 2}
    planned = read_entries(cfg, results=str(tmp_path))
    generate_demo_corpus(tmp_path / "demo" / "corpus", n_train=12, n_test=4, seed=2)
    written = read_entries(cfg, results=str(tmp_path))
    assert [(e.id, e.path, e.label, e.speaker, e.split) for e in planned] == [
        (e.id, e.path, e.label, e.speaker, e.split) for e in written
    ]


def test_run_cost_counts_clips_columns_folds_and_fits(tmp_path):
    from serflow.plan import run_cost

    cfg = config(
        datasets=[{"name": "demo", "adapter": "demo", "n_train": 40, "n_test": 8, "n_speakers": 4}],
        models={
            "lr": {"kind": "logreg", "grid": {"C": [0.1, 1.0, 10.0]}},
            "pick": {"kind": "logreg", "grid": {"C": [0.1, 1.0]}, "feature_groups": [["mfcc"], ["prosody"]]},
            "rf": {"kind": "random_forest"},
        },
        runs=[
            {"feature_sets": ["prosody", "all"], "models": ["lr", "rf"]},
            {"feature_sets": ["all"], "models": ["pick"]},
        ],
    )
    plan = build_plan(cfg)
    read_all_entries(plan, results=str(tmp_path))  # the demo's clips are known before it is written
    ds = plan.datasets["demo"]
    lr = run_cost(ds, "all", plan.models["lr"])
    assert (lr.clips, lr.columns, lr.folds, lr.fits_per_fold) == (40, 776, 4, 3 * 3 + 1)
    assert lr.fits == 5 * 10 and lr.seconds == pytest.approx(50 * 40 * 776 * 1.2e-7)
    assert run_cost(ds, "prosody", plan.models["lr"]).columns == 2 * 9 + 2  # F0 and energy, voicing, tempo
    assert run_cost(ds, "all", plan.models["pick"]).fits_per_fold == 2 * 2 * 3 + 1
    assert run_cost(ds, "all", plan.models["rf"]).fits_per_fold == 1
    ds.evaluation = {**ds.evaluation, "protocol": "group_kfold", "n_splits": 2}
    assert run_cost(ds, "all", plan.models["rf"]).folds == 2


def test_models_and_resources_are_resolved_once_in_the_plan(tmp_path):
    from serflow.plan import ModelSpec, extract_runtime, manifest_runtime, table_mem_mb

    cfg = config(
        datasets=[{"name": "demo", "adapter": "demo", "n_train": 40, "n_test": 8, "n_speakers": 4}],
        models={
            "lr": {"kind": "logreg", "grid": {"C": [0.1, 1.0, 10.0]}, "threads": 2},
            "dn": {"kind": "logreg", "domain_norm": True},
        },
        runs=[{"feature_sets": ["all"], "models": ["lr", "dn"]}],
        training={"fold_workers": 3, "parallel_min_seconds": 0},
    )
    plan = build_plan(cfg)
    read_all_entries(plan, results=str(tmp_path))
    lr, dn = plan.models["lr"], plan.models["dn"]
    assert isinstance(lr, ModelSpec) and (lr.kind, lr.threads) == ("logreg", 2)
    # settings: what shapes results; optional ones only when set, threads never
    assert "domain_norm" not in lr.settings and dn.settings["domain_norm"] is True
    assert "threads" not in lr.settings and lr.settings["grid"] == {"C": [0.1, 1.0, 10.0]}
    assert plan.fold_workers("demo", "all", "lr") == 3  # 4 folds, at most 3 workers
    assert plan.train_threads("demo", "all", "lr") == 2 * 3
    cost = plan.cost("demo", "all", "lr")
    assert plan.train_mem_mb("demo", "all", "lr", 2.0) == 1000 + math.ceil(
        20 * 2.0 + 4 * cost.clips * cost.columns * 8 / 2**20 * 3
    )
    assert plan.train_runtime("demo", "all", "lr") == 15 + math.ceil(cost.seconds * 5 / 60 / 3)
    # a run cheaper than parallel_min_seconds fits its folds in one process
    plan.training["parallel_min_seconds"] = cost.seconds + 1
    plan._costs.clear()
    assert plan.fold_workers("demo", "all", "lr") == 1
    plan.training["fold_jobs"] = 2
    assert plan.fold_jobs == 2
    assert manifest_runtime(1200) == 11 and table_mem_mb(10.0) == 1040
    assert extract_runtime(plan.datasets["demo"].features["descriptors"], 0) == 10
