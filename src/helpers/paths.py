"""The one place that defines where the project's folders are."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TRIALS = ROOT / "trials"
NOTEBOOKS = Path(os.environ.get("HELPERS_NOTEBOOKS", ROOT / "notebooks"))  # another copy: benchmarks/bench_build.py
BOOK = ROOT / "book"
SYNTHETIC = ROOT / "data" / "synthetic"
BUILD = ROOT / "_build"
DEFAULT_TRIAL = "NCT06984497"


def trial_file(trial: str | os.PathLike = DEFAULT_TRIAL) -> Path:
    """Resolve a trial id (``NCT06984497``) or a path to its YAML trial file."""
    path = Path(trial)
    if path.suffix in {".yaml", ".yml"}:
        return path if path.is_absolute() else (Path.cwd() / path).resolve()
    return TRIALS / f"{trial}.yaml"
