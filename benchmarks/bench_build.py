"""Time the book's builds and the pipeline's scaling; prints a table (median of N runs) and the machine.

- cold build: a new build folder, every notebook run, the whole HTML built;
- no-op rebuild: nothing changed (the command returns at once);
- one notebook's prose edited: that notebook runs again and jupyter-book rebuilds its page;
- the data steps and the chapters' main analyses (validate, ADaM, survival, every MMRM, safety) on simulated cohorts
  of 32, 320 and 3,200 participants.

Run: .venv/bin/python benchmarks/bench_build.py [N]   (about five minutes with N = 5)
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
from helpers.analysis import outcomes, safety, survival
from helpers.chapter import cohort_from, read_data
from helpers.trial import load_trial

GOALS = {"cold build": 15.0, "no-op rebuild": 1.5, "one notebook edited": 6.0}


def _build(build_dir: Path, notebook_dir: Path, *extra: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "helpers", "build", "--build-dir", str(build_dir), *extra], check=True,
                   cwd=paths.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=os.environ | {"HELPERS_NOTEBOOKS": str(notebook_dir)})
    return time.perf_counter() - t0


def _edit_prose(notebook: Path, run: int) -> None:
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    nb["cells"][0]["source"].append(f"\n\n(benchmark edit {run})")
    notebook.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def build_times(n: int) -> dict[str, list[float]]:
    times = {k: [] for k in GOALS}
    with tempfile.TemporaryDirectory() as tmp:
        notebooks = Path(tmp) / "notebooks"
        shutil.copytree(paths.NOTEBOOKS, notebooks)
        for run in range(n):
            build_dir = Path(tmp) / f"cold-{run}" / "_build"
            times["cold build"].append(_build(build_dir, notebooks))
            times["no-op rebuild"].append(_build(build_dir, notebooks))
            _edit_prose(notebooks / "03_baseline.ipynb", run)
            times["one notebook edited"].append(_build(build_dir, notebooks))
    return times


def pipeline_time(n_participants: int) -> float:
    trial = load_trial(paths.DEFAULT_TRIAL)
    trial = dataclasses.replace(trial, planned_n=n_participants)
    t0 = time.perf_counter()
    c = cohort_from(read_data("synthetic", trial, None), "synthetic", trial, None)
    survival.survival_results(c.adtte, c.adsl, c.trial)
    outcomes.outcome_results(c.adlb, c.adsl, c.trial)
    safety.adverse_event_results(safety.build_adae(c.export, c.adsl, c.trial), safety.deaths(c.export, c.adsl, c.trial),
                                 c.adsl, c.trial)
    return time.perf_counter() - t0


def main(n: int = 5) -> None:
    print(f"machine: {os.cpu_count()} core(s), Python {platform.python_version()}, {platform.platform()}")
    print(f"\n| Measurement (median of {n}) | Time | Goal |\n|---|---|---|")
    for name, values in build_times(n).items():
        print(f"| {name} | {statistics.median(values):.1f} s | <= {GOALS[name]:g} s |")
    scale = {k: statistics.median(pipeline_time(k) for _ in range(n)) for k in (32, 320, 3200)}
    for k, seconds in scale.items():
        print(f"| data and analyses, {k:,} participants | {seconds:.2f} s | |")
    print(f"| 100 x the cohort / 1 x | {scale[3200] / scale[32]:.1f} x | <= 3 x |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
