"""The job plan: what a (validated) config asks the workflow to build, as plain Python.

``build_plan(config)`` resolves every dataset's adapter, extractors, feature tables
and runs, and checks them against each other (a table needing an extractor that is
off, a model choosing groups its table lacks, a key another adapter owns). The
Snakefile's getters only read the plan, so all of this is unit-tested without
Snakemake. Reading the corpus tables (``entries``) is separate: it touches the disk.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from dataclasses import dataclass, field

from serflow.corpus.adapters import ADAPTERS, Adapter, Entry, ManifestError, read_entries
from serflow.corpus.manifest import listing_digest
from serflow.evaluation.protocols import EVALUATION_DEFAULTS, SCORING_KEYS
from serflow.features import FEATURE_SETS, GROUP_EXTRACTOR, FeatureSpec
from serflow.models.kinds import model_kind

#: Runs of a config without ``runs``: every model on these feature sets.
DEFAULT_RUN_SETS = ("prosody", "mfcc_deltas", "all")


class PlanError(ValueError):
    """A config that cannot be planned; the message names the key."""


@dataclass(frozen=True)
class ModelSpec:
    """One model of the config, resolved once: its kind, the settings that shape its
    results (what a run's fits and its rerun depend on) and its library threads."""

    name: str
    kind: str
    settings: dict
    threads: int = 1

    #: Settings given only when they differ from these (other models keep their params).
    OPTIONAL = {
        "feature_groups": None,
        "scale": True,
        "domain_norm": False,
        "resample": None,
        "augment": None,
    }

    @classmethod
    def from_config(cls, name: str, cfg: dict) -> ModelSpec:
        settings = {k: cfg.get(k) for k in ("kind", "params", "grid", "class_weight", "speaker_norm")}
        settings.update({k: cfg[k] for k, unset in cls.OPTIONAL.items() if cfg.get(k, unset) != unset})
        return cls(name, cfg["kind"], settings, int(cfg.get("threads", 1)))


@dataclass
class DatasetPlan:
    """One dataset: its adapter, extractors, tables (feature set -> groups) and runs."""

    name: str
    config: dict
    adapter: Adapter
    features: FeatureSpec
    tables: dict[str, tuple[str, ...]]
    runs: list[tuple[str, str]]
    evaluation: dict
    on_bad_file: str
    speakers: str = "given"  # or "cluster": estimated groups replace the speaker ids
    #: The extractor whose columns ``speakers: cluster`` groups (voiceprint or dvector).
    speaker_voice: str = "voiceprint"
    entries: list[Entry] | None = field(default=None, repr=False)
    #: What ``checks.check_datasets`` found doubtful in the listing (for the report and summary).
    warnings: list[str] = field(default_factory=list)
    #: The config's fusions whose runs are all runs of this dataset.
    fusions: list[str] = field(default_factory=list)

    @property
    def run_names(self) -> list[str]:
        """Every run: feature set x model pairs, then fusions (``fusion-<name>``)."""
        return [f"{fs}-{model}" for fs, model in self.runs] + [f"fusion-{f}" for f in self.fusions]

    def table_extractors(self, feature_set: str) -> list[str]:
        """Extractors whose shards the table of ``feature_set`` joins, in column order."""
        return self.features.needs(self.tables[feature_set])

    @property
    def generated(self) -> bool:
        return self.adapter.generate is not None

    @property
    def has_test_clips(self) -> bool:
        """Whether the listing holds unlabelled test clips (so the dataset gets submissions)."""
        return any(e.split == "test" and e.label is None and e.error is None for e in self.entries)

    @property
    def fit_evaluation(self) -> dict:
        """The evaluation settings a run's fits depend on (not those of scoring)."""
        return {k: v for k, v in self.evaluation.items() if k not in SCORING_KEYS}

    @functools.cached_property
    def listing_digest(self) -> str:
        """The audio files' state as one digest: a changed, added or removed clip reruns the
        manifest through this parameter, without Snakemake tracking every file as an input."""
        return "generated" if self.generated else listing_digest(self.entries)


#: ``extraction.shards: auto``: one shard per this many clips of the largest dataset, within
#: the bounds below; from the corpus, not the machine, so results move between machines.
CLIPS_PER_SHARD = 500
AUTO_SHARDS = (2, 32)


@dataclass
class Plan:
    datasets: dict[str, DatasetPlan]
    models: dict[str, ModelSpec]
    n_shards: int
    auto_shards: bool = False  # n_shards follows the corpus size once entries are read
    #: ``training``: fold_workers, fold_jobs, parallel_min_seconds (defaults as the schema's).
    training: dict = field(default_factory=dict)
    #: GPUs each deep job asks for (the config's ``gpus``).
    gpus: int = 0
    #: The config's ``augmentations`` (name -> ``Augmentation``).
    augmentations: dict = field(default_factory=dict)
    #: The config's ``fusions`` (name -> {runs, method}).
    fusions: dict = field(default_factory=dict)
    #: ``cross_corpus``: run name -> the datasets it is trained and tested across (two or more).
    cross_corpus: dict = field(default_factory=dict)
    #: ``cross_corpus.leave_one_out``: also each corpus against all the others pooled.
    leave_one_out: bool = True
    _costs: dict = field(default_factory=dict, repr=False)

    @property
    def shards(self) -> list[str]:
        return [f"{k:03d}" for k in range(self.n_shards)]

    # Resources: sized from EmoDB measurements (peak RSS: manifest 128 MB, extraction 323 MB,
    # feature table 147 MB, training 314 MB; about 0.05 s per clip to extract) with wide
    # margins. Runtimes are minutes. A profile's set-resources overrides any of them.

    def cost(self, dataset: str, feature_set: str, model: str) -> RunCost:
        key = (dataset, feature_set, model)
        if key not in self._costs:
            self._costs[key] = run_cost(self.datasets[dataset], feature_set, self.models[model])
        return self._costs[key]

    @property
    def fold_jobs(self) -> int:
        return max(1, self.training.get("fold_jobs", 1))

    def fold_workers(self, dataset: str, feature_set: str, model: str) -> int:
        """Processes for a run's outer folds: one for runs of a few seconds (start-up would dominate)."""
        cost = self.cost(dataset, feature_set, model)
        if cost.folds < 2 or cost.seconds < self.training.get("parallel_min_seconds", 20):
            return 1
        return min(self.training.get("fold_workers", 8), math.ceil(cost.folds / self.fold_jobs))

    def train_threads(self, dataset: str, feature_set: str, model: str) -> int:
        return self.models[model].threads * self.fold_workers(dataset, feature_set, model)

    def train_mem_mb(self, dataset: str, feature_set: str, model: str, table_mb: float) -> int:
        """The table as read (20 x its Parquet size), plus four float64 copies of the run's
        matrix (scaled, projected, fold subsets) in each fold process."""
        cost = self.cost(dataset, feature_set, model)
        matrix_mb = cost.clips * cost.columns * 8 / 2**20
        return 1000 + math.ceil(
            20 * table_mb + 4 * matrix_mb * self.fold_workers(dataset, feature_set, model)
        )

    def extract_gpus(self, dataset: str, extractor: str) -> int:
        """GPUs an extraction job asks for: ``gpus`` for an extractor that uses one, else 0."""
        return self.gpus if self.datasets[dataset].features[extractor].gpu else 0

    def train_gpus(self, model: str) -> int:
        """GPUs a training job asks for: ``gpus`` for a kind that uses one, else 0."""
        return self.gpus if model_kind(self.models[model].kind).gpu else 0

    def augmentation(self, model: str):
        """The ``Augmentation`` a model's training sets get copies of, or None."""
        augment = self.models[model].settings.get("augment")
        return self.augmentations[augment["name"]] if augment else None

    def augmentations_of(self, dataset: str) -> list[str]:
        """Names of the augmentations some run of a dataset uses."""
        names = (self.models[m].settings.get("augment") for _, m in self.datasets[dataset].runs)
        return list(dict.fromkeys(a["name"] for a in names if a))

    def train_runtime(self, dataset: str, feature_set: str, model: str) -> int:
        """Minutes: the run's estimated cost (five times the measured rate), over its processes."""
        seconds = self.cost(dataset, feature_set, model).seconds * 5 / self.fold_jobs
        return 15 + math.ceil(seconds / 60 / self.fold_workers(dataset, feature_set, model))


def manifest_runtime(n_clips: int) -> int:
    return 10 + math.ceil(n_clips * 0.05 / 60)  # every file probed, one thread


def extract_runtime(extractor, n_clips: int) -> int:
    return 10 + math.ceil(n_clips * extractor.seconds_per_clip / 60)


def extract_disk_mb(n_clips: int) -> int:
    return 100 + math.ceil(n_clips * 0.05)  # cache files of about 3 KB each


def table_mem_mb(inputs_mb: float) -> int:
    return 1000 + math.ceil(4 * inputs_mb)


def _where(dataset: str, key: str) -> str:
    return f"datasets: {dataset}: {key}"


def _feature_spec(common: dict, own: dict, where: str) -> FeatureSpec:
    merged = {**common, **own}
    try:
        spec = FeatureSpec.from_config(merged)
        spec.sample_rate  # noqa: B018 -- raises when extractors disagree
    except ValueError as err:
        raise PlanError(f"config key {where!r}: {err}") from None
    return spec


def _runs(blocks, feature_sets: dict, models: dict, where: str) -> list[tuple[str, str]]:
    pairs = []
    for block in blocks:
        for fs in block["feature_sets"]:
            if fs not in feature_sets:
                raise PlanError(f"config key {where!r}: feature set {fs!r} is not defined")
            for model in block["models"]:
                if model not in models:
                    raise PlanError(f"config key {where!r}: model {model!r} is not defined in 'models'")
                if (fs, model) not in pairs:
                    pairs.append((fs, model))
    return pairs


def _check_kind(where: str, model: ModelSpec, groups, features: FeatureSpec) -> None:
    """What a run's model kind needs of its table and install, checked before any job."""
    kind = model_kind(model.kind)
    if kind.needs and importlib.util.find_spec(kind.needs[0]) is None:
        raise PlanError(
            f"{where}: model kind {kind.name!r} needs {kind.needs[0]}: pip install -e '.[{kind.needs[1]}]'"
        )
    if model.settings.get("resample"):
        if model.settings.get("class_weight"):
            raise PlanError(
                f"{where}: models: {model.name}: resample and class_weight both rebalance the classes:"
                " keep one"
            )
        if kind.frames or kind.fit_groups:
            raise PlanError(f"{where}: models: {model.name}: a {kind.name} model takes no resample")
    if not kind.frames:
        return
    if "all" in groups or not all(GROUP_EXTRACTOR.get(g) == kind.frames for g in groups):
        example = {"frames": "logmel: [frames_mel]", "waveform": "audio: [waveform]"}.get(kind.frames, "")
        raise PlanError(
            f"{where}: a {kind.name} model takes a table of {kind.frames} groups only "
            f"(e.g. feature_sets: {{{example}}}), not {list(groups)}"
        )
    pad = features[kind.frames].pad_frames
    n_frames = (model.settings.get("params") or {}).get("n_frames")
    if not pad or n_frames != pad:
        raise PlanError(
            f"{where}: models: {model.name}: params: n_frames ({n_frames}) must equal "
            f"features: {kind.frames}: pad_frames ({pad}), which must be set (> 0)"
        )
    if model.settings.get("speaker_norm") or model.settings.get("domain_norm"):
        raise PlanError(
            f"{where}: a {kind.name} model standardises its frames itself: "
            "speaker_norm and domain_norm are not supported"
        )


def build_plan(config: dict, default_models: dict | None = None) -> Plan:
    """The plan of a config that passed the schema (defaults filled in).

    ``default_models`` (the schema's): models a config's own ``models`` add to; without
    ``runs``, the runs are the config's own models (or the defaults when it has none).
    """
    own = list(config["models"])
    model_configs = {**(default_models or {}), **config["models"]}
    models = {name: ModelSpec.from_config(name, m) for name, m in model_configs.items()}
    augmentations = _augmentations(config.get("augmentations") or {})
    for model in models.values():
        name = model.settings.get("augment")
        if name is None:
            continue
        if name not in augmentations:
            raise PlanError(
                f"config key 'models: {model.name}: augment': {name!r} is not defined in 'augmentations'"
                f" ({', '.join(augmentations) or 'none is'})"
            )
        # The whole description: a changed transform reruns the model's runs.
        model.settings["augment"] = augmentations[name].describe()
    feature_sets = {**FEATURE_SETS, **{k: tuple(v) for k, v in config.get("feature_sets", {}).items()}}
    for name in feature_sets:
        if name == "fusion" or name.startswith("fusion-"):
            raise PlanError(f"config key 'feature_sets': {name!r}: the name fusion is kept for fusion runs")
    default_runs = config.get("runs") or [{"feature_sets": list(DEFAULT_RUN_SETS), "models": own}]
    names = [d["name"] for d in config["datasets"]]
    if len(set(names)) != len(names):
        raise PlanError("config key 'datasets': names must be unique")
    if "cross_corpus" in names:
        raise PlanError("config key 'datasets': the name cross_corpus is kept for results/cross_corpus/")
    datasets = {}
    for ds in config["datasets"]:
        name = ds["name"]
        adapter = ADAPTERS[ds["adapter"]]
        try:
            adapter.check_keys(ds)
        except ManifestError as err:
            raise PlanError(str(err)) from None
        own_features = dict(ds.get("features", {}))
        speakers = ds.get("speakers", "given")
        voice = ds.get("speaker_clusters", {}).get("voice", "voiceprint")
        if speakers == "cluster":
            if own_features.get(voice, config.get("features", {}).get(voice)) is False:
                raise PlanError(f"config key {_where(name, 'speakers')!r}: cluster needs {voice} features")
            own_features.setdefault(voice, config.get("features", {}).get(voice) or True)
        elif "speaker_clusters" in ds:
            raise PlanError(f"config key {_where(name, 'speaker_clusters')!r}: needs speakers: cluster")
        features = _feature_spec(config.get("features", {}), own_features, _where(name, "features"))
        runs_where = _where(name, "runs") if "runs" in ds else "runs"
        runs = _runs(ds.get("runs") or default_runs, feature_sets, models, runs_where)
        table_names = ds.get("feature_tables", config["feature_tables"])
        for fs in table_names:
            if fs not in feature_sets:
                raise PlanError(
                    f"config key 'feature_tables': {fs!r} is neither built in "
                    f"({', '.join(FEATURE_SETS)}) nor defined in 'feature_sets'"
                )
        tables = {fs: feature_sets[fs] for fs in dict.fromkeys([*table_names, *(fs for fs, _ in runs)])}
        for fs, groups in tables.items():
            try:
                features.needs(groups)
            except ValueError as err:
                raise PlanError(f"dataset {name!r}: feature set {fs!r} {err}") from None
        for fs, model in runs:
            available = set(features.groups) if "all" in tables[fs] else set(tables[fs])
            for choice in models[model].settings.get("feature_groups") or []:
                missing = [g for g in choice if g != "all" and g not in available]
                if missing:
                    raise PlanError(
                        f"dataset {name!r}, run '{fs}-{model}': feature_groups {choice} "
                        f"name {missing}, which the table {fs!r} does not hold"
                    )
            _check_kind(f"dataset {name!r}, run '{fs}-{model}'", models[model], tables[fs], features)
        datasets[name] = DatasetPlan(
            name=name,
            config=ds,
            adapter=adapter,
            features=features,
            tables=tables,
            runs=runs,
            evaluation={**EVALUATION_DEFAULTS, **config["evaluation"], **ds.get("evaluation", {})},
            on_bad_file=ds.get("on_bad_file", config["extraction"]["on_bad_file"]),
            speakers=speakers,
            speaker_voice=voice,
        )
    fusions = dict(config.get("fusions") or {})
    for name, spec in fusions.items():
        fusions[name] = {"runs": list(spec["runs"]), "method": spec.get("method", "mean")}
        where = [ds for ds in datasets.values() if set(spec["runs"]) <= set(ds.run_names)]
        if not where:
            missing = {ds.name: sorted(set(spec["runs"]) - set(ds.run_names)) for ds in datasets.values()}
            raise PlanError(
                f"config key 'fusions: {name}: runs': no dataset has all of them (missing: {missing})"
            )
        for ds in where:
            ds.fusions.append(name)
    shards = config["extraction"]["shards"]
    training = dict(config.get("training") or {})
    gpus = int(config.get("gpus", 0))
    kwargs = {"training": training, "gpus": gpus, "augmentations": augmentations, "fusions": fusions}
    if "cross_corpus" in config:
        kwargs["cross_corpus"] = _cross_corpus(config["cross_corpus"], datasets)
        kwargs["leave_one_out"] = bool(config["cross_corpus"].get("leave_one_out", True))
    if shards == "auto":
        return Plan(datasets, models, AUTO_SHARDS[0], auto_shards=True, **kwargs)
    return Plan(datasets, models, int(shards), **kwargs)


def _cross_corpus(config: dict, datasets: dict) -> dict:
    """Run name -> the datasets holding it, for the runs ``cross_corpus`` asks for (default:
    every feature-set x model run two or more datasets share)."""
    holders: dict[str, list[str]] = {}
    for ds in datasets.values():
        for fs, model in ds.runs:
            holders.setdefault(f"{fs}-{model}", []).append(ds.name)
    asked = config.get("runs") or [r for r, where in holders.items() if len(where) > 1]
    lacking = [r for r in asked if len(holders.get(r, [])) < 2]
    if lacking or not asked:
        raise PlanError(
            "config key 'cross_corpus': "
            + (
                f"runs {lacking} are not runs of two or more datasets"
                if lacking
                else "no run is shared by two datasets"
            )
        )
    for run in asked:
        fs = run.rsplit("-", 1)[0]
        where = holders[run]
        setups = {
            d: {e: datasets[d].features[e].params() for e in datasets[d].table_extractors(fs)} for d in where
        }
        first = where[0]
        for d in where[1:]:
            if setups[d] != setups[first]:
                raise PlanError(
                    f"config key 'cross_corpus': run {run}: datasets {first} and {d} extract its features"
                    " with different settings; a model trained on one cannot read the other's"
                )
    return {r: holders[r] for r in asked}


def _augmentations(config: dict) -> dict:
    from serflow.augmentation import Augmentation

    out = {}
    for name, cfg in config.items():
        try:
            out[name] = Augmentation.from_config(name, cfg)
        except ValueError as err:
            raise PlanError(f"config key 'augmentations: {name}': {err}") from None
    return out


def read_all_entries(plan: Plan, results: str = "results") -> None:
    """List every dataset's clips (``DatasetPlan.entries``); table errors raise PlanError.

    With ``extraction.shards: auto`` this sets the shard count from the largest dataset.
    """
    for ds in plan.datasets.values():
        try:
            ds.entries = read_entries(ds.config, results)
        except ManifestError as err:
            raise PlanError(f"dataset {ds.name!r}: {err}") from None
    if plan.auto_shards:
        largest = max((len(ds.entries) for ds in plan.datasets.values()), default=0)
        low, high = AUTO_SHARDS
        plan.n_shards = min(high, max(low, -(-largest // CLIPS_PER_SHARD)))


#: Seconds of one model fit per (clip x feature), measured: logistic regression on EmoDB,
#: 535 clips x 3 213 features, about 0.2 s a fit on one core before the row-space search.
SECONDS_PER_CELL = 1.2e-7


@dataclass(frozen=True)
class RunCost:
    """What one run's training costs, estimated before any job from the plan."""

    clips: int
    columns: int
    folds: int
    fits_per_fold: int

    @property
    def fits(self) -> int:
        return (self.folds + 1) * self.fits_per_fold  # the outer folds, then the final refit

    @property
    def seconds(self) -> float:
        """One-core seconds of the whole run (generous)."""
        return self.fits * self.clips * self.columns * SECONDS_PER_CELL


def run_cost(ds: DatasetPlan, feature_set: str, model: ModelSpec) -> RunCost:
    """Clips x columns x outer folds x fits per fold (grid points x inner folds + the refit)."""
    from serflow.features import select_columns

    labelled = [e for e in ds.entries or [] if e.error is None and e.label is not None]
    groups = ds.tables[feature_set]
    columns = sum(
        len(select_columns(ds.features[name].column_groups(), groups))
        for name in ds.table_extractors(feature_set)
    )
    ev = ds.evaluation
    speakers = {e.speaker for e in labelled}
    known = labelled and None not in speakers
    protocol = ev["protocol"] if ev["protocol"] != "auto" else ("loso" if known else "stratified_kfold")
    folds = {"loso": len(speakers), "random_split": 1, "dataset_split": 1}.get(protocol, ev["n_splits"])
    grid = 1
    for values in (model.settings.get("grid") or {}).values():
        grid *= len(values)
    grid *= max(1, len(model.settings.get("feature_groups") or []))
    fits = 1 if grid == 1 and not model.settings.get("grid") else grid * ev["inner_splits"] + 1
    return RunCost(len(labelled), columns, max(1, folds), fits)
