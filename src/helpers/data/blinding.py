"""Blinded data review: the export with its arms masked (Arm A, Arm B, ...) and the check that no output names an arm.

The trial file's ``Trial.blinded`` gives the masked trial; the export is loaded and validated with the real one
(its arm codes are the site's), then masked here before anything is derived from it.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from helpers.data.loading import Export
from helpers.data.schema import export_spec
from helpers.trial import Trial

TEXT_SUFFIXES = {".html", ".md", ".csv", ".json", ".txt", ".ipynb", ".svg", ".yml", ".js", ".rtf"}


def arm_columns(trial: Trial) -> dict[str, list[str]]:
    """The export's columns that hold an arm code, by file (from the data dictionary: ``allowed_from: arms``)."""
    return {name: [c.name for c in spec.columns if c.allowed_from == "arms"] for name, spec in export_spec(trial).items()}


def mask_export(export: Export, blinded: Trial) -> Export:
    """The export with every arm code replaced by its masked code."""
    codes = blinded.masking_codes
    tables = dict(export.tables)
    for name, columns in arm_columns(blinded.masked_from).items():
        if name in tables:
            tables[name] = tables[name].assign(**{c: tables[name][c].map(codes).fillna(tables[name][c])
                                                  for c in columns if c in tables[name]})
    return replace(export, tables=tables, trial=blinded)


def arm_names(trial: Trial) -> list[str]:
    """What names an arm in the trial file: each arm's label and description."""
    return sorted({text for a in trial.arms for text in (a.label, a.description)}, key=len, reverse=True)


def mask_text(text: str, blinded: Trial) -> str:
    """``text`` with every arm label or description of the real trial replaced by the masked arm's label."""
    masked = {a.code: a.label for a in blinded.arms}
    codes = blinded.masking_codes
    for a in sorted(blinded.masked_from.arms, key=lambda a: -len(a.description)):
        for name in (a.description, a.label):
            text = re.sub(re.escape(name), masked[codes[a.code]], text, flags=re.IGNORECASE)
    return text


def arm_mentions(folder: Path, real: Trial) -> list[tuple[Path, str]]:
    """Text files under ``folder`` that name an arm of the real trial (label or description, any letter case)."""
    pattern = re.compile("|".join(re.escape(n) for n in arm_names(real)), re.IGNORECASE)
    hits = []
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.suffix in TEXT_SUFFIXES:
            found = pattern.search(path.read_text(encoding="utf-8", errors="replace"))
            if found:
                hits.append((path, found.group(0)))
    return hits
