"""Time fit_mmrm on the mmrm package's fev_data (US covariance, REML): best and median of N fits.

Usage: PYTHONPATH=src python benchmarks/bench_mmrm.py [N]
"""
from __future__ import annotations

import statistics
import sys
import time

import pandas as pd

from helpers import paths
from helpers.analysis.mmrm import fit_mmrm

FORMULA = "FEV1 ~ ARMCD * AVISIT + RACE + SEX"
REFERENCE = {"ARMCD": "PBO", "AVISIT": "VIS1", "RACE": "Asian", "SEX": "Male"}


def main(n_runs: int = 5) -> int:
    csv = paths.ROOT / "tests" / "fixtures" / "mmrm-fev" / "fev_data.csv"
    if not csv.exists():
        print(f"bench_mmrm: shared reference data not found at {csv} (set SHARED_DIR)", file=sys.stderr)
        return 2
    data = pd.read_csv(csv, na_values=["NA"])
    times = []
    for _ in range(n_runs):
        start = time.perf_counter()
        result = fit_mmrm(data, FORMULA, "USUBJID", "AVISIT", covariance="us", reference=REFERENCE)
        times.append(time.perf_counter() - start)
    print(f"fit_mmrm fev_data (n_obs={result.n_obs}, us, REML), {n_runs} runs: "
          f"best {min(times) * 1e3:.1f} ms, median {statistics.median(times) * 1e3:.1f} ms "
          f"(-2 REML log-lik {result.minus2_loglik:.5f})")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
