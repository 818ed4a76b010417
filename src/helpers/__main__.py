"""Command line: python -m helpers {simulate,validate,map,run,build,pdf,dsmb,refresh,design,lab,preview}."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

# jsonschema, which papermill's nbformat imports, loads rfc3987_syntax when it is installed (to check the "iri"
# format) and builds its grammar at import: 2 s of every build. No schema the book validates uses that format.
sys.modules.setdefault("rfc3987_syntax", None)

from helpers import freshness, paths  # noqa: E402


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

    trial = load_trial(args.trial).with_cutoff(args.cutoff).with_mapping(args.mapping)
    effects = []
    _, errors, warnings = validate_export(args.folder, trial, effects=effects)
    report = write_validation_report(errors, warnings, args.report, effects)
    mapped = f", read through the export mapping {trial.export_mapping}" if trial.export_mapping else ""
    head = f"{args.folder} (trial file {trial.source}{mapped}): {len(errors)} error(s), {len(warnings)} warning(s)"
    print(head, file=sys.stderr if errors else sys.stdout)
    if effects:
        print(f"what the mapping did: {report[-1]}", file=sys.stderr if errors else sys.stdout)
    if errors or warnings:
        print(summary_text(errors, warnings), file=sys.stderr if errors else sys.stdout)
    for p in errors[:args.show]:
        print(f"  error: {p}", file=sys.stderr)
    if len(errors) > args.show:
        print(f"  ... {len(errors) - args.show} more errors", file=sys.stderr)
    print(f"full list: {report[0]}", file=sys.stderr if errors else sys.stdout)
    return 1 if errors else 0


def _map(args) -> int:
    from helpers.data.mapping_draft import write_draft
    from helpers.trial import load_trial

    out = args.out or Path.cwd() / f"{args.suggest.resolve().name}.mapping.yaml"
    try:
        draft = write_draft(args.suggest, load_trial(args.trial), out, force=args.force)
    except (FileExistsError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(draft.summary())
    print(f"draft mapping written: {out} (review it, then validate with it)")
    return 0


def _current(args, html: bool, pdf: bool = False) -> bool:
    """The quick check before anything heavy is imported: the published build came from these very inputs, and no
    other build is running."""
    if args.force or not freshness.is_current_now(args.build_dir, args.data, paths.trial_file(args.trial), args.seed,
                                              args.cutoff, args.blinded, html, args.mapping, pdf):
        return False
    print(f"nothing changed since the published build in {args.build_dir}: it is current")
    return True


def _run(args) -> int:
    if _current(args, html=False):
        return 0
    from helpers.pipeline import run

    run(args.data, args.trial, args.seed, cutoff=args.cutoff, blinded=args.blinded, jobs=args.jobs, force=args.force,
        build_dir=args.build_dir, mapping=args.mapping)
    return 0


def _build(args) -> int:
    if _current(args, html=True):
        print(args.build_dir / "html" / "index.html")
        return 0
    from helpers.pipeline import build

    print(build(args.data, args.trial, args.seed, cutoff=args.cutoff, blinded=args.blinded, jobs=args.jobs,
                force=args.force, build_dir=args.build_dir, mapping=args.mapping))
    return 0


def _pdf(args) -> int:
    if not _current(args, html=True, pdf=True):
        from helpers.pipeline import build

        build(args.data, args.trial, args.seed, cutoff=args.cutoff, blinded=args.blinded, jobs=args.jobs,
              force=args.force, build_dir=args.build_dir, mapping=args.mapping, pdf=True)
    print(args.build_dir / freshness.read_manifest(args.build_dir)["pdf"]["file"])
    return 0


def _dsmb(args) -> int:
    from helpers.pdf import dsmb

    if args.blinded:
        print("error: dsmb builds the blinded (open) and the unblinded (closed) report itself: drop --blinded",
              file=sys.stderr)
        return 1

    for path in dsmb(args.data, args.trial, args.seed, args.cutoff, args.mapping, args.jobs, args.force, args.out):
        print(path)
    return 0


def _refresh(args) -> int:
    from helpers.pipeline import refresh

    refresh(args.notebooks)
    return 0


def _design(args) -> int:
    import time

    from helpers.analysis import design
    from helpers.report.design import operating_table
    from helpers.trial import load_trial

    trial = load_trial(args.trial)
    scenarios = design.default_scenarios(trial)
    start = time.perf_counter()
    reps = design.simulate_design(trial, scenarios, replicates=args.replicates, seed=args.seed, n=args.n,
                                  n_jobs=args.jobs, scheduler=args.scheduler)
    seconds = time.perf_counter() - start
    oc = design.operating_characteristics(reps, trial)
    where = design.scheduler_address(args.scheduler) or f"this machine (jobs {args.jobs})"
    seed = design.assumption(trial, "seed") if args.seed is None else args.seed
    print(f"{trial.id}: operating characteristics of the design, N = {args.n or trial.planned_n}, {args.replicates} "
          f"replicates x {len(scenarios)} scenarios, seed {seed}: {seconds:.1f} s on {where}")
    print(operating_table(oc, trial).to_string(index=False))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        oc.to_csv(args.out, index=False, float_format="%.10g", lineterminator="\n")
        print(f"written: {args.out}")
    return 0


def _lab(args) -> int:
    from helpers.lab import LabError, start
    from helpers.trial import load_trial

    try:
        start(load_trial(args.trial), port=args.port, browser=not args.no_browser, prefix=args.prefix)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _preview(args) -> int:
    from helpers.preview import PreviewError, blinded_mask, run

    build_args = ["--data", args.data, "--trial", args.trial, "--build-dir", str(args.build_dir)]
    for flag, value in (("--seed", args.seed), ("--cutoff", args.cutoff), ("--mapping", args.mapping),
                        ("--jobs", args.jobs)):
        build_args += [flag, str(value)] if value is not None else []
    build_args += ["--blinded"] if args.blinded else []
    sys.stdout.reconfigure(line_buffering=True)
    try:
        run(build_args, args.build_dir, paths.trial_file(args.trial), args.data, args.mapping, args.port,
            args.open, args.force, blinded_mask(args.trial) if args.blinded else str)
    except PreviewError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers", description="Build the trial's analysis book.")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_common(p, data=True, mapping=False):
        p.add_argument("--trial", default=paths.DEFAULT_TRIAL, help="trial id in trials/ or path to a trial YAML file")
        p.add_argument("--cutoff", default=None, help="data cut-off YYYY-MM-DD (default: the trial file's)")
        if data or mapping:
            p.add_argument("--mapping", default=None,
                           help="export mapping YAML the site's files are read through (default: the trial file's "
                                "export_mapping; none: the export is in the contract's shape)")
        if data:
            p.add_argument("--data", default="synthetic", help='export folder, or "synthetic" to simulate (default)')
            p.add_argument("--seed", type=int, default=None, help="simulation seed (default: the trial file's)")
            p.add_argument("--blinded", action="store_true",
                           help="blinded data review: arms masked as Arm A, Arm B, ... (key: $BLINDING_KEY)")
            p.add_argument("--jobs", type=int, default=None, help="notebooks run at once (default: the number of cores)")
            p.add_argument("--force", action="store_true", help="run every notebook, even those whose inputs are unchanged")
            p.add_argument("--build-dir", type=Path, default=paths.BUILD, help="where the book is published (default: _build)")
        return p

    p = with_common(sub.add_parser("simulate", help="write the synthetic export (default: data/synthetic/)"), data=False)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", type=Path, default=paths.SYNTHETIC)
    p.set_defaults(func=_simulate)
    p = with_common(sub.add_parser("validate", help="check an export folder against the schema and trial file"), data=False,
                    mapping=True)
    p.add_argument("folder", type=Path, nargs="?", default=paths.SYNTHETIC)
    p.add_argument("--report", type=Path, default=paths.BUILD.with_name("_build-validation"),
                   help="folder for problems.csv and summary.csv (default: _build-validation)")
    p.add_argument("--show", type=int, default=20, help="errors printed one by one (all are in the report)")
    p.set_defaults(func=_validate)
    p = sub.add_parser("map", help="draft an export mapping for a site's own files, for a person to review")
    p.add_argument("--suggest", type=Path, required=True, metavar="EXPORT", help="the site's export folder")
    p.add_argument("--trial", default=paths.DEFAULT_TRIAL, help="trial id in trials/ or path to a trial YAML file")
    p.add_argument("--out", type=Path, default=None, help="where to write it (default: <EXPORT>.mapping.yaml here)")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(func=_map)
    with_common(sub.add_parser("run", help="execute the notebooks with papermill into the book")).set_defaults(func=_run)
    with_common(sub.add_parser("build", help="run, then build the HTML book with jupyter-book")).set_defaults(func=_build)
    with_common(sub.add_parser("pdf", help="build the book and print it as one PDF (A4, offline, the system's "
                                           "Chromium)")).set_defaults(func=_pdf)
    p = with_common(sub.add_parser("dsmb", help="the DSMB pair: open (blinded) and closed (unblinded) PDF reports of "
                                                "one export and cut-off, with their SHA-256"))
    p.add_argument("--out", type=Path, default=paths.BUILD.with_name("_build-dsmb"),
                   help="folder of the pair and its checksums (default: _build-dsmb)")
    p.set_defaults(func=_dsmb)
    p = sub.add_parser("refresh", help="re-execute notebooks/ with default parameters and store their outputs")
    p.add_argument("notebooks", nargs="*", help="only these notebooks (default: all)")
    p.set_defaults(func=_refresh)
    p = sub.add_parser("design", help="operating characteristics of the design by simulation (power, type-I error, "
                                      "bias, coverage, N for 80%% power)")
    p.add_argument("--trial", default=paths.DEFAULT_TRIAL, help="trial id in trials/ or path to a trial YAML file")
    p.add_argument("--replicates", type=int, default=1000, help="simulated trials per scenario (default 1000)")
    p.add_argument("--jobs", type=int, default=-1, help="local worker processes (default -1: every core)")
    p.add_argument("--scheduler", default=None,
                   help="Dask scheduler tcp://host:port to run the replicates on (default: $DASK_SCHEDULER, else local)")
    p.add_argument("--seed", type=int, default=None, help="seed of the replicates (default: the trial file's simulation seed)")
    p.add_argument("--n", type=int, default=None, help="participants per simulated trial (default: planned_n)")
    p.add_argument("--out", type=Path, default=None, help="also write the table as CSV here")
    p.set_defaults(func=_design)
    p = sub.add_parser("lab", help="JupyterLab on notebooks/ with the trial's kernel (\"<trial> book\")")
    p.add_argument("--trial", default=paths.DEFAULT_TRIAL, help="trial id in trials/ or path to a trial YAML file")
    p.add_argument("--port", type=int, default=None, help="the server's port (default 8888, or the next free one)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser (the console prints the URL)")
    p.add_argument("--prefix", default=sys.prefix, help=argparse.SUPPRESS)
    p.set_defaults(func=_lab)
    p = with_common(sub.add_parser("preview", help="serve the book on localhost; rebuild and reload the open page "
                                                   "when a notebook, page, helper or the trial file changes"))
    p.add_argument("--port", type=int, default=8000, help="the server's port (default 8000; 0: any free port)")
    p.add_argument("--open", action="store_true", help="open the book in a browser")
    p.set_defaults(func=_preview)
    args = parser.parse_args(argv)
    from helpers.trial import parse_cutoff

    try:
        if getattr(args, "cutoff", None):
            parse_cutoff(args.cutoff)
        return args.func(args)
    except Exception as exc:
        if isinstance(exc, _user_errors()):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


def _user_errors() -> tuple[type[Exception], ...]:
    """The errors reported as one line (a bad export, mapping, trial file, print or build), imported only when
    something failed: a no-op build imports none of the pipeline."""
    from helpers.data.loading import ExportError
    from helpers.data.mapping import MappingError
    from helpers.pdf import PrintError
    from helpers.pipeline import BuildError
    from helpers.trial import TrialFileError

    return BuildError, ExportError, MappingError, PrintError, TrialFileError


if __name__ == "__main__":
    sys.exit(main())
