"""The one place that defines where the project's folders are."""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TRIALS = ROOT / "trials"
NOTEBOOKS = Path(os.environ.get("HELPERS_NOTEBOOKS", ROOT / "notebooks"))  # another copy: benchmarks/bench_build.py
BOOK = ROOT / "book"
SYNTHETIC = ROOT / "data" / "synthetic"
BUILD = ROOT / "_build"
BUILD_CACHE = BUILD.with_name("_build.d") / "cache"  # kept across builds (the build keeps "cache" when it publishes)
DESIGN_CACHE = BUILD_CACHE / "design"  # analysis.design.design_results
DEFAULT_TRIAL = "NCT06984497"


def trial_file(trial: str | os.PathLike = DEFAULT_TRIAL) -> Path:
    """Resolve a trial id (``NCT06984497``) or a path to its YAML trial file."""
    path = Path(trial)
    if path.suffix in {".yaml", ".yml"}:
        return path if path.is_absolute() else (Path.cwd() / path).resolve()
    return TRIALS / f"{trial}.yaml"


def mapping_file(trial_file: os.PathLike, named: str | None, override: str | os.PathLike | None = None) -> Path | None:
    """The export mapping a real export is read through: ``override`` (a build parameter; "none": the export is in
    the contract's shape), else the trial file's ``export_mapping`` (``named``), relative to the trial file."""
    if override:
        return None if str(override).lower() == "none" else Path(override).resolve()
    return (Path(trial_file).parent / str(named)).resolve() if named else None


def jupyter_book(*args: str) -> list[str]:
    """The command line that runs ``jupyter-book *args`` in this environment. jsonschema, which jupyter-book
    imports, would build rfc3987_syntax's IRI grammar at import (2 s of every book build; no schema of the book
    uses that format): it is kept out, as ``python -m helpers`` keeps it out of the build itself."""
    return [sys.executable, "-c", "import sys; sys.modules['rfc3987_syntax'] = None; "
            "from jupyter_book.cli.main import main; main()", *args]
