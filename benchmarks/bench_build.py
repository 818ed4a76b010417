"""Time the book's builds and the data step's scaling: the four figures of the speed goals, as medians of N runs.

- cold build: ``python -m helpers build`` into a new, empty build folder (no published build, no jupyter-book
  cache beside it), with the environment in place: every notebook runs, the whole HTML is built;
- one notebook's prose edited: a markdown cell of 03_baseline changed, then the same build again (that notebook
  runs again and jupyter-book rebuilds);
- no-op rebuild: nothing changed (the command returns at once);
- data and analyses, 32 and 3,200 participants: the build's data step on an export folder (simulated and written
  beforehand, not timed), as the build runs it: validation (``chapter.read_data``), ADaM (``chapter.cohort_from``),
  then every analysis of the plan (``Results.compute_all``), in this process; the design's simulated trials (which
  depend on the trial file alone) are read from the design cache, as in a build after the first.

The notebooks are a copy (HELPERS_NOTEBOOKS), so the edit never touches notebooks/. The machine is printed: on a
shared machine run it when it is quiet, or read the figures as upper bounds.

Run: .venv/bin/python benchmarks/bench_build.py [N]   (N = 5 by default; about six minutes)
     .venv/bin/python benchmarks/bench_build.py N --data-only   (the data and analyses figures only)
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from helpers import paths
from helpers.analysis.design import design_results
from helpers.analysis.results import DESIGN_REPLICATES
from helpers.chapter import cohort_from, read_data
from helpers.data.simulation import simulate_export, write_export
from helpers.trial import load_trial

BUILDS = {"cold build": 15.0, "one notebook's prose edited": 5.0, "no-op rebuild": 1.0}
SCALE_GOAL = 3.0
SIZES = (32, 3200)
EDITED = "03_baseline.ipynb"


def _build(build_dir: Path, notebook_dir: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "helpers", "build", "--build-dir", str(build_dir)], check=True,
                   cwd=paths.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=os.environ | {"HELPERS_NOTEBOOKS": str(notebook_dir)})
    return time.perf_counter() - t0


def _edit_prose(notebook: Path, run: int) -> None:
    """Change the first markdown cell's text (prose only: no code, no parameter)."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    source = cell["source"] if isinstance(cell["source"], list) else [cell["source"]]
    cell["source"] = source + [f"\n\n(benchmark edit {run})"]
    notebook.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def build_times(n: int) -> dict[str, list[float]]:
    """Per run: a cold build into a new folder, the prose edit rebuilt, then a no-op."""
    times = {k: [] for k in BUILDS}
    with tempfile.TemporaryDirectory() as tmp:
        notebooks = Path(tmp) / "notebooks"
        shutil.copytree(paths.NOTEBOOKS, notebooks)
        for run in range(n):
            build_dir = Path(tmp) / f"cold-{run}" / "_build"
            times["cold build"].append(_build(build_dir, notebooks))
            _edit_prose(notebooks / EDITED, run)
            times["one notebook's prose edited"].append(_build(build_dir, notebooks))
            times["no-op rebuild"].append(_build(build_dir, notebooks))
            shutil.rmtree(build_dir.parent, ignore_errors=True)
    return times


def analyses(c, design=None) -> None:
    """Every analysis of the plan, once, as a build computes them (``Results.compute_all``), the design's simulated
    trials taken as kept (``design``: they depend on the trial file alone, not on the export)."""
    results = c.results
    if design is not None:
        results.__dict__["design"] = design
    results.compute_all()


def data_time(folder: Path, trial, design) -> float:
    """Validation, ADaM and the analyses of the export in ``folder``, as the build does them."""
    t0 = time.perf_counter()
    c = cohort_from(read_data(str(folder), trial, None), str(folder), trial, None)
    analyses(c, design)
    return time.perf_counter() - t0


def data_times(n: int) -> dict[int, list[float]]:
    base = load_trial(paths.DEFAULT_TRIAL).with_mapping("none")
    design = design_results(base, DESIGN_REPLICATES)  # kept on disk: a build with the design cache in place
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            trial = dataclasses.replace(base, planned_n=size)
            folder = Path(tmp) / f"export-{size}"
            write_export(simulate_export(trial), folder)
            data_time(folder, trial, design)  # imports and caches warmed, as in a build's long-lived process
            times[size] = [data_time(folder, trial, design) for _ in range(n)]
    return times


def main(n: int = 5, data_only: bool = False) -> None:
    print(f"machine: {os.cpu_count()} core(s), Python {platform.python_version()}, {platform.platform()}; "
          f"load average {os.getloadavg()[0]:.2f} at start")
    print(f"\n| Measurement (median of {n}) | Time | Goal |\n|---|---|---|")
    if not data_only:
        for name, values in build_times(n).items():
            print(f"| {name} | {statistics.median(values):.1f} s | <= {BUILDS[name]:g} s |", flush=True)
    scale = {k: statistics.median(v) for k, v in data_times(n).items()}
    for k, seconds in scale.items():
        print(f"| data and analyses, {k:,} participants | {seconds:.2f} s | |")
    small, large = SIZES
    print(f"| {large:,} / {small:,} participants | {scale[large] / scale[small]:.1f} x | <= {SCALE_GOAL:g} x |")
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(args[0]) if args else 5, "--data-only" in sys.argv)
