"""Time sensitivity_analyses on the book's synthetic cohort (the chapter's call): median of N runs.

Before vectorizing (a statsmodels formula fit per imputation and delta in mi_ancova and tipping_grid,
commit 5f40376), measured once with this script: median of 5 runs 8.89 s (best 8.21 s) on 2 CPUs,
Python 3.11.7, x86_64, a machine shared with other work (load average 1.2 to 2.3). After, in the same
conditions: median 0.72 s, about two thirds of it the imputations (sequential posterior draws).

Usage: PYTHONPATH=src python benchmarks/bench_sensitivity.py [N]
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time

from helpers.analysis.sensitivity import sensitivity_analyses
from helpers.pipeline import load_cohort

BEFORE_S = 8.89


def main(n_runs: int = 5) -> int:
    c = load_cohort()
    times = []
    for _ in range(n_runs):
        start = time.perf_counter()
        sensitivity_analyses(c.adlb, c.adsl, c.trial, c.trial.key_secondary)
        times.append(time.perf_counter() - start)
    print(f"machine: {os.cpu_count()} CPU(s), Python {platform.python_version()} ({platform.machine()})")
    print(f"sensitivity_analyses on the synthetic cohort ({c.trial.key_secondary}), {n_runs} runs: "
          f"median {statistics.median(times):.2f} s, best {min(times):.2f} s")
    if BEFORE_S:
        print(f"before vectorizing: median {BEFORE_S:.2f} s (x{BEFORE_S / statistics.median(times):.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
