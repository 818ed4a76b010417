"""Provenance of a build: what an auditor needs to re-create it (commit, inputs, parameters, versions).

The build date is SOURCE_DATE_EPOCH when set (the reproducible-builds convention), else now; notebook
run times go to provenance.json only, so that the book's pages stay identical between equal builds.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
from pathlib import Path

from helpers import paths
from helpers.trial import Trial

PACKAGES = ("pandas", "numpy", "scipy", "statsmodels", "matplotlib", "seaborn", "papermill", "jupyter-book",
            "myst-nb", "faker", "openpyxl", "pyyaml", "pyreadstat", "rtflite", "python-docx", "jupyterlab")


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def export_checksum(files: dict[str, str]) -> str:
    """One SHA-256 for a whole export: of its files' names and checksums, in name order."""
    return hashlib.sha256("".join(f"{n}:{h}\n" for n, h in sorted(files.items())).encode()).hexdigest()


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=paths.ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def build_date() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc) if epoch else dt.datetime.now(dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def collect(trial: Trial, inputs: dict[str, str], parameters: dict, source: str, mapping=None) -> dict:
    """Everything that determines the build, as a JSON-ready dict: ``inputs`` are the export's files as the site
    sent them, ``mapping`` the export mapping they were read through (an ExportMapping, or None)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "commit": _git("rev-parse", "HEAD") or "unknown (not a git checkout)",
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "build_date": build_date(),
        "data_source": source,
        "trial_file": {"path": os.path.relpath(trial.source, paths.ROOT), "sha256": sha256(trial.source)},
        "inputs": inputs,
        "export_sha256": export_checksum(inputs),
        "export_mapping": None if mapping is None else {"path": _shown_path(mapping.path), "sha256": mapping.sha256},
        "parameters": parameters,
        "cutoff": str(trial.cutoff) if trial.cutoff else None,
        "blinding": "blinded (arms masked as " + ", ".join(a.label for a in trial.arms) + ")" if trial.is_blinded
        else "unblinded (arms named)",
        "python": platform.python_version(),
        "packages": versions,
    }


def _shown_path(path: Path) -> str:
    """A path relative to the project when inside it (the same in every checkout), else as given."""
    path = Path(path).resolve()
    return os.path.relpath(path, paths.ROOT) if path.is_relative_to(paths.ROOT) else str(path)


def write_json(record: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def markdown(record: dict) -> str:
    """The provenance appendix of the book (no run times: those are in provenance.json)."""
    inputs = "\n".join(f"| `{name}` | `{digest}` |" for name, digest in sorted(record["inputs"].items()))
    params = "\n".join(f"| `{k}` | `{v}` |" for k, v in record["parameters"].items())
    packages = ", ".join(f"{k} {v}" for k, v in record["packages"].items())
    dirty = " (with uncommitted changes)" if record["dirty"] else ""
    mapping = record.get("export_mapping")
    mapped = (f"\n- **Export mapping**: `{mapping['path']}`, SHA-256 `{mapping['sha256']}` (the files below are the "
              "site's own, never edited; the mapping made the contract's tables from them)") if mapping else ""
    return f"""# Provenance

What this book was built from, so that an auditor can re-create it: check out the commit, put the
inputs with these checksums in place, and run `make book` with the same parameters. The same record,
with each notebook's run time, is `_build/results/provenance.json`.

- **Commit**: `{record["commit"]}`{dirty}
- **Built**: {record["build_date"]}
- **Data**: {record["data_source"]}; export checksum (SHA-256 of its files' checksums) `{record["export_sha256"]}`
- **Trial file**: `{record["trial_file"]["path"]}`, SHA-256 `{record["trial_file"]["sha256"]}`{mapped}
- **Data cut-off**: {record["cutoff"] or "none (final analysis)"}; **blinding**: {record["blinding"]}
- **Python** {record["python"]}; {packages}

| Input file | SHA-256 |
|---|---|
{inputs}

| Parameter | Value |
|---|---|
{params}
"""
