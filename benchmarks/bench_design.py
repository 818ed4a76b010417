"""Time 1,000 replicates of the design simulation (one scenario, both analyses) on this machine.

Usage: .venv/bin/python benchmarks/bench_design.py [replicates] [jobs]. One run (the time includes starting the
worker processes), with the machine it ran on. Budget: 1,000 replicates in at most 60 s on 2 cores.
"""
from __future__ import annotations

import os
import platform
import sys
import time

from helpers import paths
from helpers.analysis import design
from helpers.trial import load_trial


def main() -> None:
    replicates = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    jobs = int(sys.argv[2]) if len(sys.argv) > 2 else -1
    trial = load_trial(paths.DEFAULT_TRIAL)
    scenario = design.default_scenarios(trial)[2]
    cores = os.cpu_count()
    print(f"machine: {platform.machine()}, {cores} CPU(s) ({len(os.sched_getaffinity(0))} usable), "
          f"Python {platform.python_version()}, {platform.system()} {platform.release()}")
    print(f"{trial.id}: N = {trial.planned_n}, scenario hazard ratio {scenario.hazard_ratio:g}, "
          f"key secondary effect {scenario.key_effect:g}; primary test {trial.primary_test}, key MMRM, fixed sequence")
    start = time.perf_counter()
    reps = design.simulate_design(trial, [scenario], replicates=replicates, n_jobs=jobs)
    seconds = time.perf_counter() - start
    workers = cores if jobs == -1 else jobs
    print(f"{len(reps)} replicates, {workers} worker(s): {seconds:.1f} s, {len(reps) / seconds:.1f} replicates/s "
          f"({1000 * seconds * workers / len(reps):.0f} ms of one core per replicate)")
    budget = 60.0 * replicates / 1000
    print(f"budget {budget:.0f} s: {'within' if seconds <= budget else 'OVER'}")


if __name__ == "__main__":
    main()
