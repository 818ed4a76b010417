"""Command line: python -m helpers {simulate,validate,run,build,refresh}."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import paths


def _simulate(args) -> int:
    from .simulation import simulate_export, write_export
    from .trial import load_trial

    trial = load_trial(args.trial)
    for path in write_export(simulate_export(trial, seed=args.seed), args.out):
        print(path)
    return 0


def _validate(args) -> int:
    from .loading import validate_export
    from .trial import load_trial

    _, problems, warnings = validate_export(args.folder, load_trial(args.trial))
    for w in warnings:
        print(f"warning: {w}")
    if problems:
        print(f"{args.folder}: {len(problems)} problem(s)", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print(f"{args.folder}: valid export for {args.trial} ({len(warnings)} warning(s))")
    return 0


def _run(args) -> int:
    from .pipeline import run

    run(args.data, args.trial, args.seed)
    return 0


def _build(args) -> int:
    from .pipeline import build_html, run

    run(args.data, args.trial, args.seed)
    print(build_html())
    return 0


def _refresh(args) -> int:
    from .pipeline import refresh

    refresh(args.notebooks)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers", description="Build the trial's analysis book.")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_common(p, data=True):
        p.add_argument("--trial", default=paths.DEFAULT_TRIAL, help="trial id in trials/ or path to a trial YAML file")
        if data:
            p.add_argument("--data", default="synthetic", help='export folder, or "synthetic" to simulate (default)')
            p.add_argument("--seed", type=int, default=None, help="simulation seed (default: the trial file's)")
        return p

    p = with_common(sub.add_parser("simulate", help="write the synthetic export (default: data/synthetic/)"), data=False)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", type=Path, default=paths.SYNTHETIC)
    p.set_defaults(func=_simulate)
    p = with_common(sub.add_parser("validate", help="check an export folder against the schema and trial file"), data=False)
    p.add_argument("folder", type=Path, nargs="?", default=paths.SYNTHETIC)
    p.set_defaults(func=_validate)
    with_common(sub.add_parser("run", help="execute the notebooks with papermill into the book")).set_defaults(func=_run)
    with_common(sub.add_parser("build", help="run, then build the HTML book with jupyter-book")).set_defaults(func=_build)
    p = sub.add_parser("refresh", help="re-execute notebooks/ with default parameters and store their outputs")
    p.add_argument("notebooks", nargs="*", help="only these notebooks (default: all)")
    p.set_defaults(func=_refresh)
    args = parser.parse_args(argv)
    from .loading import ExportError
    from .pipeline import BuildError
    from .trial import TrialFileError

    try:
        return args.func(args)
    except (BuildError, ExportError, TrialFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
