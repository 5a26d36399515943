"""Checks before any job: config keys with a did-you-mean, and what the corpus listing shows.

``unknown_keys`` runs before the schema (whose own message prints the whole schema and
config); ``check_datasets`` after the corpus tables are read, so a speaker pattern that
matches nothing or a table whose paths are all missing stops the run before extraction.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import yaml

from serflow.corpus.adapters import ADAPTERS, COMMON_KEYS
from serflow.plan import Plan, PlanError, build_plan, read_all_entries

#: A split with at least this share of its paths missing stops the run.
MISSING_SHARE = 0.5
#: Paths of a split checked at start-up (evenly spread).
SAMPLE = 200


def read_config_file(path) -> dict:
    """A YAML config file as a dict; ValueError naming the file, line and column of a syntax error."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        hint = " (in double quotes a backslash starts an escape: write regexes in single quotes)"
        escape = "escape" in str(err.problem)
        raise ValueError(f"{where}: {err.problem}{hint if escape else ''}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config is a mapping of keys, found {type(data).__name__}")
    return data


def coerce_text_values(config: dict, schema: dict) -> dict:
    """Numbers and booleans that arrive as text, converted where the schema expects them.

    Snakemake parses nested values of ``--config`` and of a profile's ``config:`` with YAML's
    BaseLoader, so ``training: {fold_workers: 8}`` arrives as ``'8'``. Changes ``config`` in place.
    """
    defs = schema.get("$defs", {})

    def branches(s) -> list[dict]:
        out, todo = [], [s]
        while todo:
            s = todo.pop()
            if not isinstance(s, dict):
                continue
            if "$ref" in s:
                todo.append(defs[s["$ref"].rsplit("/", 1)[-1]])
            out.append(s)
            todo += [*s.get("oneOf", ()), *s.get("anyOf", ()), *s.get("allOf", ())]
            todo += [s[k] for k in ("then", "else") if k in s]
        return out

    def walk(value, s):
        subs = branches(s)
        if isinstance(value, dict):
            for k, v in value.items():
                inner = [b["properties"][k] for b in subs if k in b.get("properties", {})]
                inner += [
                    b["additionalProperties"]
                    for b in subs
                    if isinstance(b.get("additionalProperties"), dict) and k not in b.get("properties", {})
                ]
                value[k] = walk(v, {"anyOf": inner})
            return value
        if isinstance(value, list):
            inner = [b["items"] for b in subs if isinstance(b.get("items"), dict)]
            return [walk(v, {"anyOf": inner}) for v in value]
        if not isinstance(value, str):
            return value
        types: set[str] = set()
        for b in subs:
            if b.get("const") == value or value in b.get("enum", ()):
                return value
            t = b.get("type", ())
            types.update([t] if isinstance(t, str) else t)
        if "string" in types:  # text is already a valid value
            return value
        if "integer" in types and re.fullmatch(r"[+-]?\d+", value):
            return int(value)
        if "number" in types:
            try:
                return float(value)
            except ValueError:
                pass
        if "boolean" in types and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not types:  # free-form, such as a model's params: read the text as YAML would
            parsed = yaml.safe_load(value) if value.strip() else value
            if isinstance(parsed, bool | int | float):
                return parsed
        return value

    return walk(config, schema)


def _suggest(key: str, known) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(sorted(known))})"


def unknown_keys(config: dict, schema: dict) -> list[str]:
    """One line per config key the schema does not know: where it is and the likely intended key."""
    props = schema["properties"]
    out = [
        f"config key {key!r} (top level) is not a setting{_suggest(key, props)}"
        for key in config
        if key not in props
    ]
    model_keys = set(schema["$defs"]["model"]["properties"])
    for name, model in (config.get("models") or {}).items():
        for key in model or {}:
            if key not in model_keys:
                out.append(f"config key {key!r} (models: {name}) is not a setting{_suggest(key, model_keys)}")
    for ds in config.get("datasets") or []:
        adapter = ADAPTERS.get(ds.get("adapter")) if isinstance(ds, dict) else None
        if adapter is None:
            continue  # the schema names the adapters
        dataset_keys = {*COMMON_KEYS, *adapter.keys}
        for key in ds:
            if key not in dataset_keys:
                where = f"datasets: {ds.get('name', '?')}, adapter {adapter.name}"
                out.append(f"config key {key!r} ({where}) is not a setting{_suggest(key, dataset_keys)}")
    evaluation_keys = set(schema["$defs"]["evaluation"]["properties"])
    for key in config.get("evaluation") or {}:
        if key not in evaluation_keys:
            out.append(f"config key {key!r} (evaluation) is not a setting{_suggest(key, evaluation_keys)}")
    return out


def check_datasets(plan: Plan) -> list[str]:
    """Warnings about every dataset's listing; raises PlanError for what would fail later.

    Stops: most of a split's paths missing; a speaker protocol asked for where speaker ids
    are missing (a ``speaker_pattern`` that matches nothing). Warns: a protocol ``auto``
    falling back to a speaker-dependent stratified k-fold; a sample submission in the
    folder that the config does not name.
    """
    out = []
    for ds in plan.datasets.values():
        warnings = ds.warnings
        warnings.clear()
        entries = [e for e in ds.entries or [] if not e.error]
        for split in ("train", "test") if not ds.generated else ():  # generated: written by a job
            listed = [e for e in entries if e.split == split]
            # A stat per file is paid at every start-up: decide on an even sample, count all only to report.
            sample = listed[:: max(1, len(listed) // SAMPLE)]
            if not sample or sum(not os.path.exists(e.path) for e in sample) < MISSING_SHARE * len(sample):
                continue
            missing = [e for e in listed if not os.path.exists(e.path)]
            if len(missing) >= MISSING_SHARE * len(listed):
                raise PlanError(
                    f"dataset {ds.name!r}: {len(missing)} of {len(listed)} {split} paths are missing "
                    f"(e.g. {missing[0].path}); {ds.adapter.missing_hint.format(split=split)}"
                )
        labelled = [e for e in entries if e.label is not None]
        no_speaker = [e for e in labelled if not e.speaker]
        protocol = ds.evaluation["protocol"]
        pattern = ds.config.get("speaker_pattern")
        if pattern and no_speaker:
            matched = len(labelled) - len(no_speaker)
            message = f"dataset {ds.name!r}: speaker_pattern {pattern!r} matched {matched} of {len(labelled)}"
            if protocol in ("loso", "group_kfold"):
                raise PlanError(f"{message}; protocol {protocol} needs the speaker of every clip")
            warnings.append(message)
        if labelled and no_speaker and protocol == "auto" and ds.speakers != "cluster":
            warnings.append(
                f"dataset {ds.name!r}: {len(no_speaker)} of {len(labelled)} labelled clips have no speaker, "
                "so protocol auto falls back to stratified_kfold: speaker-DEPENDENT scores, above what "
                "new speakers get. Set speakers: cluster for folds grouped by estimated speakers"
            )
        # An adapter that takes a sample submission but found none: one under another name?
        if "sample_submission" in ds.adapter.keys and ds.adapter.sample_submission(ds.config) is None:
            root = Path(ds.config["root"])
            found = sorted(p.name for p in root.glob("*.csv") if "sample" in p.name.lower())
            if found:
                warnings.append(
                    f"dataset {ds.name!r}: {found[0]} looks like the sample submission but the config "
                    f"does not name it: set sample_submission: {found[0]} (a generic file is written)"
                )
        out += warnings
    return out


def schema_error(config: dict, schema: dict) -> str | None:
    """The schema's most relevant complaint about ``config`` as one line naming the key, or None.

    (Snakemake's ``validate`` prints the whole schema and config around it.)"""
    import jsonschema

    error = jsonschema.exceptions.best_match(
        jsonschema.validators.validator_for(schema)(schema).iter_errors(config)
    )
    if error is None:
        return None
    where = ": ".join(str(p) for p in error.absolute_path) or "top level"
    return f"config key {where!r}: {error.message}"


def check_config(config: dict, schema_path, defaults_path=None) -> tuple[list[str], list[str]]:
    """(errors, warnings) of a config file's contents, as the workflow would find them before
    any job: merged over ``defaults_path`` (``config/config.yaml``), keys, schema, plan and
    the corpus listing (tables read, no audio opened)."""
    from snakemake.utils import update_config, validate

    schema = read_config_file(schema_path)
    merged = read_config_file(defaults_path) if defaults_path and Path(defaults_path).exists() else {}
    update_config(merged, config)
    coerce_text_values(merged, schema)
    errors = unknown_keys(merged, schema)
    if errors:
        return errors, []
    problem = schema_error(merged, schema)
    if problem:
        return [problem], []
    validate(merged, schema=str(schema_path))  # fills in the defaults
    try:
        plan = build_plan(merged, schema["properties"]["models"]["default"])
        read_all_entries(plan)
        return [], check_datasets(plan)
    except PlanError as err:
        return [str(err)], []
