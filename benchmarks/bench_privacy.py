"""Time the privacy scan against a large screening log: normalizing 100,000 people's identifiers and
scanning the stored notebooks (median of N runs). The goal is under 5 s.

Run: .venv/bin/python benchmarks/bench_privacy.py [N]
"""
import statistics
import sys
import time

import pandas as pd

from helpers import paths
from helpers.data.privacy import find_identifiers, identifier_values


def screening_log(n: int) -> pd.DataFrame:
    """n made-up people: pinyin names, mobile numbers with separators, identity card numbers, birth dates."""
    syllables = ["zhang", "wang", "li", "liu", "chen", "yang", "zhao", "huang", "zhou", "wu", "xu", "sun"]
    return pd.DataFrame({
        "name": [f"{syllables[i % 12].title()} {syllables[i // 12 % 12]}{syllables[i // 144 % 12]}{i // 1728}"
                 for i in range(n)],
        "phone": [f"13{i:03d}-{i % 9999:04d}-{i % 7919:04d}" for i in range(n)],
        "id_number": [f"21010219{i % 60 + 40:02d}0101{i:05d}"[:17] + "X" for i in range(n)],
        "birth_date": pd.to_datetime("1940-01-01") + pd.to_timedelta([i % 20000 for i in range(n)], unit="D"),
    })


def main(runs: int = 5, n: int = 100_000) -> None:
    log = screening_log(n)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        ids = identifier_values({"screening": log})
        hits = find_identifiers(paths.NOTEBOOKS, ids)
        times.append(time.perf_counter() - t0)
    size = sum(p.stat().st_size for p in paths.NOTEBOOKS.glob("*.ipynb")) / 1e6
    print(f"privacy scan: {n:,} screening rows ({len(ids):,} identifier values), {size:.1f} MB of notebooks, "
          f"{len(hits)} hit(s): median {statistics.median(times):.2f} s of {runs} runs (goal < 5 s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
