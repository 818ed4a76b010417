"""Where a chapter's outputs go: its tables (CSV, for the downloads) and figures (marked when the data are synthetic)."""
from __future__ import annotations

from pathlib import Path

from helpers.report.plots.style import mark_figures
from helpers.report.tables import save_tables_to

SYNTHETIC_MARK = "SYNTHETIC DATA"


def publish_to(output_dir: str | Path | None, synthetic: bool) -> None:
    """Set up a chapter: its tables saved under ``output_dir`` (none in an analyst's session) and every figure
    stamped 'SYNTHETIC DATA' when the cohort is simulated."""
    save_tables_to(output_dir)
    mark_figures(SYNTHETIC_MARK if synthetic else None)
