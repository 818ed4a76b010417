"""Command line: python -m helpers {simulate,validate,run,build,refresh}."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from helpers import paths


def _simulate(args) -> int:
    from helpers.data.simulation import simulate_export, write_export
    from helpers.trial import load_trial

    trial = load_trial(args.trial).with_cutoff(args.cutoff)
    for path in write_export(simulate_export(trial, seed=args.seed), args.out):
        print(path)
    return 0


def _validate(args) -> int:
    from helpers.data.loading import summary_text, validate_export, write_validation_report
    from helpers.trial import load_trial

    trial = load_trial(args.trial).with_cutoff(args.cutoff)
    _, errors, warnings = validate_export(args.folder, trial)
    report = write_validation_report(errors, warnings, args.report)
    head = f"{args.folder} (trial file {trial.source}): {len(errors)} error(s), {len(warnings)} warning(s)"
    print(head, file=sys.stderr if errors else sys.stdout)
    if errors or warnings:
        print(summary_text(errors, warnings), file=sys.stderr if errors else sys.stdout)
    for p in errors[:args.show]:
        print(f"  error: {p}", file=sys.stderr)
    if len(errors) > args.show:
        print(f"  ... {len(errors) - args.show} more errors", file=sys.stderr)
    print(f"full list: {report[0]}", file=sys.stderr if errors else sys.stdout)
    return 1 if errors else 0


def _run(args) -> int:
    from helpers.pipeline import run

    run(args.data, args.trial, args.seed, cutoff=args.cutoff, blinded=args.blinded)
    return 0


def _build(args) -> int:
    from helpers.pipeline import build

    print(build(args.data, args.trial, args.seed, cutoff=args.cutoff, blinded=args.blinded))
    return 0


def _refresh(args) -> int:
    from helpers.pipeline import refresh

    refresh(args.notebooks)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers", description="Build the trial's analysis book.")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_common(p, data=True):
        p.add_argument("--trial", default=paths.DEFAULT_TRIAL, help="trial id in trials/ or path to a trial YAML file")
        p.add_argument("--cutoff", default=None, help="data cut-off YYYY-MM-DD (default: the trial file's)")
        if data:
            p.add_argument("--data", default="synthetic", help='export folder, or "synthetic" to simulate (default)')
            p.add_argument("--seed", type=int, default=None, help="simulation seed (default: the trial file's)")
            p.add_argument("--blinded", action="store_true",
                           help="blinded data review: arms masked as Arm A, Arm B, ... (key: $BLINDING_KEY)")
        return p

    p = with_common(sub.add_parser("simulate", help="write the synthetic export (default: data/synthetic/)"), data=False)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", type=Path, default=paths.SYNTHETIC)
    p.set_defaults(func=_simulate)
    p = with_common(sub.add_parser("validate", help="check an export folder against the schema and trial file"), data=False)
    p.add_argument("folder", type=Path, nargs="?", default=paths.SYNTHETIC)
    p.add_argument("--report", type=Path, default=paths.BUILD.with_name("_build-validation"),
                   help="folder for problems.csv and summary.csv (default: _build-validation)")
    p.add_argument("--show", type=int, default=20, help="errors printed one by one (all are in the report)")
    p.set_defaults(func=_validate)
    with_common(sub.add_parser("run", help="execute the notebooks with papermill into the book")).set_defaults(func=_run)
    with_common(sub.add_parser("build", help="run, then build the HTML book with jupyter-book")).set_defaults(func=_build)
    p = sub.add_parser("refresh", help="re-execute notebooks/ with default parameters and store their outputs")
    p.add_argument("notebooks", nargs="*", help="only these notebooks (default: all)")
    p.set_defaults(func=_refresh)
    args = parser.parse_args(argv)
    from helpers.data.loading import ExportError
    from helpers.pipeline import BuildError
    from helpers.trial import TrialFileError

    try:
        return args.func(args)
    except (BuildError, ExportError, TrialFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
