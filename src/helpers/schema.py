"""The raw export contract (export_schema.yaml) and the data dictionary generated from it."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd
import yaml

from .trial import Trial

SCHEMA_FILE = Path(__file__).with_name("export_schema.yaml")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    meaning: str
    unit: str = ""
    allowed: tuple[str, ...] | None = None
    allowed_from: str | None = None
    min: float | None = None
    max: float | None = None
    required: bool = True
    required_when: dict | None = None
    identifier: bool = False

    def allowed_values(self, trial: Trial) -> tuple[str, ...] | None:
        """Allowed codes, from the schema or (for arms and visits) from the trial file."""
        if self.allowed_from == "arms":
            return tuple(trial.arm_codes)
        if self.allowed_from == "visits":
            return tuple(trial.visit_codes)
        if self.type == "flag":
            return ("Y", "N")
        return self.allowed


@dataclass(frozen=True)
class FileSpec:
    name: str
    meaning: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def identifiers(self) -> list[str]:
        return [c.name for c in self.columns if c.identifier]


@lru_cache(maxsize=None)
def load_schema(path: Path = SCHEMA_FILE) -> dict[str, FileSpec]:
    """All files of the export, in the order the schema lists them."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    files = {}
    for fname, spec in raw["files"].items():
        cols = []
        for cname, c in spec["columns"].items():
            c = dict(c)
            if "allowed" in c:
                c["allowed"] = tuple(str(v) for v in c["allowed"])
            cols.append(Column(name=cname, **c))
        files[fname] = FileSpec(fname, spec["meaning"], tuple(spec["key"]), tuple(cols))
    return files


def _allowed_text(col: Column, trial: Trial) -> str:
    parts = []
    allowed = col.allowed_values(trial)
    if allowed:
        parts.append(", ".join(allowed))
    if col.min is not None or col.max is not None:
        parts.append(f"{col.min if col.min is not None else ''} to {col.max if col.max is not None else ''}")
    if col.type == "date":
        parts.append("YYYY-MM-DD")
    return "; ".join(parts)


def _required_text(col: Column) -> str:
    if col.required_when:
        return "if " + ", ".join(f"{k} = {v}" for k, v in col.required_when.items())
    return "yes" if col.required else "no"


def data_dictionary(trial: Trial) -> pd.DataFrame:
    """One row per column of the raw export: file, column, type, unit, allowed values, meaning."""
    rows = []
    for spec in load_schema().values():
        for col in spec.columns:
            rows.append({
                "File": f"{spec.name}.csv", "Column": col.name, "Type": col.type,
                "Unit": "" if col.unit == "1" else col.unit, "Allowed values": _allowed_text(col, trial),
                "Required": _required_text(col),
                "Meaning": col.meaning + (" **Direct identifier: dropped on load.**" if col.identifier else ""),
            })
    return pd.DataFrame(rows)


def data_dictionary_markdown(trial: Trial) -> str:
    """The data dictionary as MyST markdown: one section and table per file."""
    dd = data_dictionary(trial)
    out = []
    for spec in load_schema().values():
        out.append(f"## `{spec.name}.csv`\n\n{spec.meaning} Key: {', '.join(spec.key)}.\n")
        table = dd[dd["File"] == f"{spec.name}.csv"].drop(columns="File")
        out.append(_markdown_table(table))
    return "\n".join(out)


def _markdown_table(df: pd.DataFrame) -> str:
    esc = lambda v: str(v).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"
