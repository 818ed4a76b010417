"""What every chapter starts from: the cohort (trial, validated export, ADaM), read once per build.

A build reads and validates the export once (``read_data``), derives ADaM once (``cohort_from``), runs every
analysis of the plan once (``Cohort.results``) and saves the cohort with them beside the notebooks
(``save_cohort``); each chapter loads that file (``load_cohort(..., cohort_file)``) and only shows the results.
Run by hand, without a build, a chapter makes the cohort itself from the same parameters and computes, once, the
analyses it shows.
"""
from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd

from helpers import paths
from helpers.freshness import export_files
from helpers.analysis.findings import Findings
from helpers.analysis.results import Results
from helpers.data.adam import analysis_records, build_adam
from helpers.data.blinding import mask_export
from helpers.data.loading import (SUFFIXES, Export, ExportError, Problem, export_from, read_raw, resolve_mapping,
                                  validate_export)
from helpers.data.mapping import Effect, ExportMapping, apply_mapping
from helpers.data.schema import export_spec
from helpers.data.privacy import Identifiers, identifier_values
from helpers.data.simulation import seed_text, simulate_export, write_export
from helpers.trial import Trial, load_trial

SYNTHETIC = "synthetic"
IDENTIFIER_FILES = ("screening", "randomization")


@dataclass
class Cohort:
    """The trial, the validated export and the ADaM datasets.

    ``adlb`` holds the records the analyses use (ANL01FL = Y: one value per participant, parameter
    and visit); ``adlb_all`` every record, with missing values and their reasons, unscheduled and
    repeated samples (it is what ``_build/data/adlb.csv`` holds).
    """
    trial: Trial
    export: Export
    adsl: pd.DataFrame
    adlb: pd.DataFrame
    adtte: pd.DataFrame
    source: str
    adlb_all: pd.DataFrame | None = None
    synthetic: bool = False

    @property
    def adam(self) -> dict[str, pd.DataFrame]:
        return {"adsl": self.adsl, "adlb": self.adlb_all, "adtte": self.adtte}

    @cached_property
    def results(self) -> Results:
        """Every analysis of the plan, each computed on first use and kept: a build computes them all before
        saving the cohort, so its chapters only read them."""
        return Results(self.export, self.adsl, self.adlb, self.adtte, self.trial, self.adlb_all)

    @property
    def findings(self) -> Findings:
        """What the plan's verdicts rest on (``Results.findings``)."""
        return self.results.findings


@dataclass
class DataRead:
    """One reading of the export: validated tables, errors and warnings, the SHA-256 of every input file, the
    identifying values of the raw export (the privacy scan looks for them in every output), and the export mapping
    applied with what it did."""
    folder: Path
    tables: dict[str, pd.DataFrame]
    errors: list[Problem]
    warnings: list[Problem]
    inputs: dict[str, str] = field(default_factory=dict)
    identifiers: Identifiers | None = None
    mapping: ExportMapping | None = None
    effects: list[Effect] = field(default_factory=list)


def source_text(data: str, trial: Trial, seed: int | None) -> str:
    """Where the data come from, and the cut-off at an interim look, as a chapter names it."""
    if data == SYNTHETIC:
        text = f"synthetic cohort (seed {seed_text(trial, seed)})"
    else:
        text = f"site export {Path(data).name}"
    return text + (f", data cut-off {trial.cutoff:%d %B %Y}" if trial.is_interim else "")


def _raw_identifiers(folder: Path, trial: Trial, mapping: ExportMapping | None) -> Identifiers:
    """The direct identifiers as the site wrote them (through the export mapping, when the files are the site's own)."""
    specs, tables = export_spec(trial), {}
    for name in IDENTIFIER_FILES:
        if mapping is not None and name in mapping.files:
            table, _ = apply_mapping(folder, mapping.files[name], specs[name], trial, [], [], [], set())
            if table is not None:
                tables[name] = table
            continue
        found = [folder / f"{name}{ext}" for ext in SUFFIXES if (folder / f"{name}{ext}").exists()]
        if found:
            tables[name] = read_raw(found[0])
    return identifier_values(tables)


def read_data(data: str, trial: Trial, seed: int | None) -> DataRead:
    """Simulate (data="synthetic") or take the export folder (through the trial's export mapping, if any), and
    validate it once."""
    if data == SYNTHETIC:
        simulated = simulate_export(trial, seed=seed)
        with tempfile.TemporaryDirectory() as tmp:
            write_export(simulated, tmp)
            tables, errors, warnings = validate_export(tmp, trial.with_mapping("none"))
            return DataRead(Path(tmp), tables, errors, warnings, export_files(Path(tmp)), identifier_values(simulated))
    folder, effects = Path(data), []
    mapping = resolve_mapping(trial.export_mapping, trial)
    tables, errors, warnings = validate_export(folder, trial, mapping=mapping, effects=effects)
    return DataRead(folder, tables, errors, warnings, export_files(folder), _raw_identifiers(folder, trial, mapping),
                    mapping, effects)


def cohort_from(read: DataRead, data: str, trial: Trial, seed: int | None, blinded: bool = False) -> Cohort:
    """The cohort from a valid reading: identifiers dropped, arms masked when ``blinded`` (Arm A, Arm B, ...;
    the letters shuffled by $BLINDING_KEY), ADaM derived."""
    if read.errors:
        raise ExportError(read.folder, read.errors, trial)
    export = export_from(read.tables, read.warnings, read.folder, trial)
    if blinded:
        trial = trial.blinded(os.environ.get("BLINDING_KEY"))
        export = mask_export(export, trial)
    adam = build_adam(export, trial)
    return Cohort(trial, export, adam["adsl"], analysis_records(adam["adlb"]), adam["adtte"],
                  source_text(data, trial, seed), adam["adlb"], data == SYNTHETIC)


def load_cohort(data: str = SYNTHETIC, trial: str = paths.DEFAULT_TRIAL, seed: int | None = None,
                cutoff: str | None = None, blinded: bool = False, cohort_file: str | None = None) -> Cohort:
    """The chapter's cohort: the build's (``cohort_file``), else simulated (data="synthetic", with seed) or read
    from an export folder, validated and derived here. ``cutoff`` (YYYY-MM-DD) overrides the trial file's."""
    if cohort_file is not None:
        with open(cohort_file, "rb") as f:
            return pickle.load(f)
    t = load_trial(trial).with_cutoff(cutoff)
    return cohort_from(read_data(data, t, seed), data, t, seed, blinded)


def save_cohort(cohort: Cohort, path: Path) -> Path:
    """Save the build's cohort, with every result, for its chapters (a private file of the build, never published)."""
    cohort.results.compute_all()
    with open(path, "wb") as f:
        pickle.dump(cohort, f, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def save_result(table: pd.DataFrame | None, output_dir: str | Path | None, name: str) -> Path | None:
    """Write a chapter's tidy result table to <output_dir>/results/<name>.csv; nothing when output_dir or the
    table is None."""
    if output_dir is None or table is None:
        return None
    path = Path(output_dir) / "results" / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False, date_format="%Y-%m-%d", float_format="%.10g", lineterminator="\n")
    return path
