"""Time the data steps of the book: simulate, validate and load, derive ADaM (best and median of N runs).

Run: .venv/bin/python benchmarks/bench_pipeline.py [N]
"""
import statistics
import sys
import tempfile
import time

from helpers import paths
from helpers.data.adam import build_adam
from helpers.data.loading import load_export
from helpers.data.simulation import simulate_export, write_export
from helpers.trial import load_trial


def timed(fn, n):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main(n: int = 10) -> None:
    for trial_id in (paths.DEFAULT_TRIAL, "NCT06242405"):
        trial = load_trial(trial_id)
        with tempfile.TemporaryDirectory() as tmp:
            steps = {
                "simulate_export": lambda: simulate_export(trial),
                "write_export": lambda: write_export(simulate_export(trial), tmp),
            }
            write_export(simulate_export(trial), tmp)
            export = load_export(tmp, trial)
            steps["load_export (validate)"] = lambda: load_export(tmp, trial)
            steps["build_adam"] = lambda: build_adam(export, trial)
            print(f"{trial_id} (N={trial.planned_n}), {n} runs each:")
            for name, fn in steps.items():
                best, median = timed(fn, n)
                print(f"  {name:<24} best {1000 * best:7.1f} ms   median {1000 * median:7.1f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
