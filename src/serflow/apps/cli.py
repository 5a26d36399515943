"""The ``serflow`` command: check a config before a run, use a trained model on new audio or in a web page."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DESCRIPTION = """\
serflow's command line. The workflow itself runs with snakemake (see the README);
these commands work beside it. serflow COMMAND --help describes each one."""


def _predict(args) -> int:
    from serflow.apps.predict import TrainedModel, collect_inputs, predict_files

    model = TrainedModel.load(args.model)
    print(f"model {model.name}: {', '.join(model.labels)}", file=sys.stderr)
    if model.card.exists():
        print(f"model card: {model.card}", file=sys.stderr)
    items = collect_inputs(args.inputs)
    if not items:
        print("error: no audio found in the inputs", file=sys.stderr)
        return 2
    if model.normalisation.speaker and args.speaker_norm == "refuse" and all(s is None for _, s in items):
        print(
            "error: the model normalises each speaker's clips with that speaker's statistics, and the"
            " inputs name no speakers: give a CSV with path and speaker columns (at least"
            f" {args.min_speaker_clips} clips per speaker), or --speaker-norm global to scale with the"
            " training set's statistics",
            file=sys.stderr,
        )
        return 2
    cache = None if args.no_cache else (args.cache_dir or model.default_cache())
    table = predict_files(
        model,
        items,
        jobs=args.jobs,
        cache_dir=cache,
        speaker_norm=args.speaker_norm,
        min_speaker_clips=args.min_speaker_clips,
        progress=sys.stderr.isatty(),
    )
    table.to_csv(args.output, index=False)
    failed = int((table["error"] != "").sum())
    print(f"{len(table) - failed} of {len(table)} clips predicted -> {args.output}", file=sys.stderr)
    for path, error in table.loc[table["error"] != "", ["path", "error"]].head(10).itertuples(index=False):
        print(f"  {path}: {error}", file=sys.stderr)
    if failed > 10:
        print(f"  ... {failed - 10} more in the error column", file=sys.stderr)
    return 0 if failed < len(table) else 1


def _serve(args) -> int:
    from serflow.apps.predict import FusedModel, ModelError, TrainedModel
    from serflow.apps.serve import serve

    model = TrainedModel.load(args.model)
    if isinstance(model, FusedModel):
        raise ModelError(
            f"{model.path}: a fusion run; serve takes one run's model (serflow predict takes fusions)"
        )
    if model.card.exists():
        print(f"model card: {model.card}", file=sys.stderr)
    serve(model, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb, threads=args.threads)
    return 0


def _check(args) -> int:
    from serflow.checks import check_config, read_config_file

    repo = Path(__file__).resolve().parents[3]
    errors, warnings = check_config(
        read_config_file(args.config),
        repo / "workflow/schemas/config.schema.yaml",
        repo / "config/config.yaml",
    )
    for line in errors:
        print(f"error: {args.config}: {line}", file=sys.stderr)
    for line in warnings:
        print(f"warning: {args.config}: {line}", file=sys.stderr)
    if errors or warnings:
        return 2 if errors else 1
    print(f"{args.config}: YAML, keys, schema and corpus listing look right")
    return 0


def parser() -> argparse.ArgumentParser:
    from serflow.models.normalisation import FALLBACKS, MIN_SPEAKER_CLIPS

    ap = argparse.ArgumentParser(
        prog="serflow", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    p = sub.add_parser(
        "predict",
        help="predict the emotion of audio files with a trained model",
        description="Predict with a trained model: one CSV row per input clip (path, prediction, one"
        " probability column per class, error). Features are extracted with the parameters the model"
        " was trained with. Exit status 1 only when no clip could be predicted.",
    )
    p.add_argument("model", type=Path, help="a run folder (results/<dataset>/runs/<run>/) or model.joblib")
    p.add_argument(
        "inputs",
        nargs="+",
        help="audio files, folders (searched recursively for .wav/.flac/.ogg) or CSV files with a path"
        " column and an optional speaker column",
    )
    p.add_argument("-o", "--output", type=Path, default=Path("predictions.csv"), help="default: %(default)s")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="processes (default: CPUs)")
    p.add_argument("--cache-dir", type=Path, help="feature cache (default: the model's training cache)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write a feature cache")
    p.add_argument(
        "--speaker-norm",
        choices=FALLBACKS,
        default="refuse",
        help="for a speaker-normalised model, clips whose speaker has too few clips: refuse them"
        " (default), or scale them with the training set's statistics (noted in the output)",
    )
    p.add_argument("--min-speaker-clips", type=int, default=MIN_SPEAKER_CLIPS, help="default: %(default)s")
    p.set_defaults(run=_predict)
    s = sub.add_parser(
        "serve",
        help="a web page that records or uploads speech and shows the predicted emotion",
        description="Serve a trained model: a page to record or upload a clip, and POST /predict"
        " (multipart field 'file') returning JSON.",
    )
    s.add_argument("model", type=Path, help="a run folder or its model.joblib")
    s.add_argument("--host", default="127.0.0.1", help="default: %(default)s (this machine only)")
    s.add_argument("--port", type=int, default=8000, help="default: %(default)s")
    s.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload (default: %(default)s)")
    s.add_argument("--threads", type=int, default=1, help="library threads (default: %(default)s)")
    s.set_defaults(run=_serve)
    c = sub.add_parser(
        "check",
        help="check a config file before a run: YAML, keys, schema and corpus listing",
        description="Check a config file as the workflow would before any job: YAML syntax (naming"
        " the line), unknown keys (with a did-you-mean), the schema, the plan and the corpus listing"
        " (tables read, no audio opened), merged over config/config.yaml. Exit status 0: clean;"
        " 1: warnings (e.g. a speaker_pattern matching no file name); 2: errors.",
    )
    c.add_argument("config", type=Path, help="a config file (YAML)")
    c.set_defaults(run=_check)
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from serflow.apps.predict import ModelError

    try:
        return args.run(args)
    except (ModelError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
