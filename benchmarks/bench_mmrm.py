"""Time fit_mmrm on the mmrm package's fev_data (REML, Satterthwaite df): median and best of N fits of the
unstructured model, then of each covariance structure, beside R mmrm's time where R and mmrm are installed.

Usage: .venv/bin/python benchmarks/bench_mmrm.py [N]   (N runs per fit, default 5)
"""
from __future__ import annotations

import functools
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy

from helpers import paths
from helpers.analysis.mmrm import FALLBACK_ORDER, STRUCTURE_NAMES, fit_mmrm

CSV = paths.ROOT / "tests" / "fixtures" / "mmrm-fev" / "fev_data.csv"
FORMULA = "FEV1 ~ ARMCD * AVISIT + RACE + SEX"
REFERENCE = {"ARMCD": "PBO", "AVISIT": "VIS1", "RACE": "Asian", "SEX": "Male"}
R_REFERENCE_MS = 37.0
R_SCRIPT = """
suppressPackageStartupMessages(library(mmrm))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], na.strings = "NA")
d$USUBJID <- factor(d$USUBJID)
d$AVISIT <- factor(d$AVISIT, levels = c("VIS1", "VIS2", "VIS3", "VIS4"))
d$ARMCD <- factor(d$ARMCD, levels = c("PBO", "TRT"))
d$RACE <- factor(d$RACE, levels = c("Asian", "Black or African American", "White"))
d$SEX <- factor(d$SEX, levels = c("Male", "Female"))
fit <- function() mmrm(FEV1 ~ ARMCD * AVISIT + RACE + SEX + us(AVISIT | USUBJID), data = d,
                       reml = TRUE, method = "Satterthwaite")
invisible(fit())
times <- replicate(as.integer(args[2]), system.time(fit())[["elapsed"]])
cat(median(times) * 1000, min(times) * 1000, "\\n")
"""


def timed(fn, n: int) -> tuple[float, float, object]:
    """Median and best wall time in ms of n calls (after one warm-up call), and the last result."""
    result = fn()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times), 1e3 * min(times), result


def machine() -> str:
    """CPU count (and those this process may use), load, CPU model, Python and the numeric libraries."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = f", load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""
    model = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")),
                 platform.processor() or platform.machine())
    return (f"{os.cpu_count()} CPUs ({usable} usable{load}), {model}; {platform.python_implementation()} "
            f"{platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, pandas {pd.__version__}")


def _cpuinfo() -> list[str]:
    path = Path("/proc/cpuinfo")
    return path.read_text().splitlines() if path.exists() else []


def r_mmrm(n: int) -> tuple[str, float]:
    """R mmrm's median (best) time on the same data and model, or why there is none; and the median
    to compare with (the issue's figure when R mmrm cannot be run here)."""
    rscript = shutil.which("Rscript")
    missing = f"R mmrm: not installed (reference from the issue: {R_REFERENCE_MS:.0f} ms)"
    if rscript is None:
        return missing, R_REFERENCE_MS
    check = subprocess.run([rscript, "-e", 'quit(status = !requireNamespace("mmrm", quietly = TRUE))'],
                           capture_output=True, timeout=120, check=False)
    if check.returncode != 0:
        return missing, R_REFERENCE_MS
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as f:
        f.write(R_SCRIPT)
    try:
        out = subprocess.run([rscript, f.name, str(CSV), str(n)], capture_output=True, text=True, timeout=600,
                             check=False)
    finally:
        os.unlink(f.name)
    if out.returncode != 0:
        why = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return f"R mmrm: failed ({why}); reference from the issue: {R_REFERENCE_MS:.0f} ms", R_REFERENCE_MS
    median, best = (float(v) for v in out.stdout.split()[:2])
    return f"R mmrm (us, REML, Satterthwaite), {n} runs: median {median:.1f} ms, best {best:.1f} ms", median


def main(n_runs: int = 5) -> int:
    if not CSV.exists():
        print(f"bench_mmrm: reference data not found at {CSV}", file=sys.stderr)
        return 2
    data = pd.read_csv(CSV, na_values=["NA"])
    medians = {}
    rows = []
    for name in FALLBACK_ORDER:
        fit = functools.partial(fit_mmrm, data, FORMULA, "USUBJID", "AVISIT", covariance=name, reference=REFERENCE)
        medians[name], best, res = timed(fit, n_runs)
        rows.append(f"{name + ' (' + STRUCTURE_NAMES[name] + ')':<32}{medians[name]:>7.1f} ms{best:>7.1f} ms"
                    f"   {res.minus2_loglik:.5f}")
    print(f"fit_mmrm on fev_data ({FORMULA}; {res.n_obs} observations, {res.n_subjects} subjects), "
          f"REML, Satterthwaite df; {n_runs} runs per fit")
    print(f"machine: {machine()}\n")
    print(f"{'covariance':<32}{'median':>10}{'best':>10}   -2 REML log-lik")
    print("\n".join(rows) + "\n")
    r_line, r_median = r_mmrm(n_runs)
    print(r_line)
    ratio = medians["us"] / r_median
    print(f"unstructured fit: median {medians['us']:.1f} ms = {ratio:.2f} x R mmrm's {r_median:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
