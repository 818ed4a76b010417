"""Results kept between builds (``paths.BUILD_CACHE``), under the SHA-256 of what they depend on: read whole or
not at all, written atomically; an entry that cannot be read is computed again."""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Callable

NUMERIC_PACKAGES = ("numpy", "pandas", "scipy", "statsmodels", "joblib")
KEPT = 4  # entries a folder of the cache keeps, the newest (the analyses and scans of the last few builds)


def package_versions(names=NUMERIC_PACKAGES) -> dict[str, str | None]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def key(inputs: dict) -> str:
    """SHA-256 of ``inputs`` (JSON, keys sorted) with the numeric packages' versions."""
    return hashlib.sha256(json.dumps(inputs | {"packages": package_versions()}, sort_keys=True).encode()).hexdigest()


def read(path: Path, valid: Callable[[object], bool]):
    """The value kept in ``path``, or None when it is missing, unreadable or not ``valid``."""
    try:
        with open(path, "rb") as f:
            value = pickle.load(f)
    except Exception:  # missing, truncated or unreadable: computed again
        return None
    return value if valid(value) else None


def write(path: Path, value, keep: int | None = None) -> None:
    """Keep ``value`` in ``path`` (atomically); with ``keep``, only the ``keep`` newest entries of its folder stay."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if keep is not None:
        entries = sorted(path.parent.glob("*.pickle"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[keep:]:
            old.unlink(missing_ok=True)
