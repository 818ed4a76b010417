"""The book's pipeline: load or simulate the cohort, execute the notebooks with papermill, build with jupyter-book.

Everything is written to a staging folder first and moved into place only when every step
succeeded, so a failed build leaves the last good outputs and HTML untouched.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from helpers import paths
from helpers.data.adam import analysis_records, build_adam, write_adam
from helpers.data.loading import Export, ExportError, load_export, read_raw, summary_by_rule, validate_export, write_validation_report
from helpers.data.privacy import find_identifiers, identifier_values
from helpers.data.schema import data_dictionary_markdown
from helpers.data.simulation import simulate_export, write_export
from helpers.trial import Trial, load_trial

SYNTHETIC = "synthetic"


@dataclass
class Cohort:
    """What every chapter starts from: the trial, the validated export and the ADaM datasets.

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

    @property
    def adam(self) -> dict[str, pd.DataFrame]:
        return {"adsl": self.adsl, "adlb": self.adlb_all, "adtte": self.adtte}


def source_text(data: str, trial: Trial, seed: int | None) -> str:
    """Where the data come from, and the cut-off at an interim look, as a chapter names it."""
    if data == SYNTHETIC:
        text = f"synthetic cohort (seed {seed if seed is not None else trial.simulation.get('seed')})"
    else:
        text = f"site export {Path(data).name}"
    return text + (f", data cut-off {trial.cutoff:%d %B %Y}" if trial.is_interim else "")


def load_cohort(data: str = SYNTHETIC, trial: str = paths.DEFAULT_TRIAL, seed: int | None = None,
                cutoff: str | None = None) -> Cohort:
    """Simulate (data="synthetic", with seed) or load an export folder, validate it and derive ADaM.

    ``cutoff`` (YYYY-MM-DD) overrides the trial file's data cut-off.
    """
    t = load_trial(trial).with_cutoff(cutoff)
    if data == SYNTHETIC:
        with tempfile.TemporaryDirectory() as tmp:
            write_export(simulate_export(t, seed=seed), tmp)
            export = load_export(tmp, t)
    else:
        export = load_export(data, t)
    adam = build_adam(export, t)
    return Cohort(t, export, adam["adsl"], analysis_records(adam["adlb"]), adam["adtte"],
                  source_text(data, t, seed), adam["adlb"])


def save_result(table: pd.DataFrame, output_dir: str | Path | None, name: str) -> Path | None:
    """Write a chapter's tidy result table to <output_dir>/results/<name>.csv; nothing when output_dir is None."""
    if output_dir is None:
        return None
    path = Path(output_dir) / "results" / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False, date_format="%Y-%m-%d", float_format="%.10g", lineterminator="\n")
    return path


def raw_identifiers(data: str, trial: Trial, seed: int | None):
    """Identifier values of the raw export (or of the simulated one), to check no output carries them."""
    if data == SYNTHETIC:
        return identifier_values(simulate_export(trial, seed=seed))
    schema_names = {"screening", "randomization"}
    tables = {}
    for name in schema_names:
        for ext in (".csv", ".xlsx"):
            if (Path(data) / f"{name}{ext}").exists():
                tables[name] = read_raw(Path(data) / f"{name}{ext}")
    return identifier_values(tables)


def notebooks(folder: Path = paths.NOTEBOOKS) -> list[Path]:
    """The book's chapters in order: notebooks/NN_*.ipynb."""
    return sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))


def trial_markdown(trial: Trial) -> str:
    """The trial's arms, visits and endpoints as MyST markdown, for the introduction."""
    arms = "\n".join(f"| {a.code} | {a.label} | {a.description} | {a.ratio} |" for a in trial.arms)
    visits = "\n".join(f"| {v.label} | {v.day} | {v.window[0]} to {v.window[1]} |" for v in trial.visits)
    endpoints = "\n".join(
        f"| {e.code} | {e.label} | {'' if e.unit == '1' else e.unit} | {'log (ratio of geometric means)' if e.log else 'original'} | {e.better} |"
        for e in trial.endpoints)
    pe = trial.primary_endpoint
    interim = (f"```{{important}}\nInterim build: data cut-off {trial.cutoff:%d %B %Y}. Participants still in follow-up "
               "are censored at the cut-off or their last contact; visits not yet due are not counted as missed.\n```\n\n"
               if trial.is_interim else "")
    return f"""{interim}**{trial.id}**: {trial.title}.

{trial.design.capitalize()} trial in {trial.population}; {trial.planned_n} participants enrolled over
{trial.accrual_months} months at the {trial.site}, followed for {trial.followup_weeks} weeks.
Randomization: {trial.randomization.get('method', '')}, block size(s) {', '.join(map(str, trial.randomization.get('block_sizes', [])))},
allocation ratio {':'.join(str(a.ratio) for a in trial.arms)}{', stratified by ' + ', '.join(trial.randomization['strata']) if trial.randomization.get('strata') else ', unstratified'}.

**Primary endpoint**: {pe.get('label', '')} (horizon {pe.get('horizon_days', '')} days; liver transplantation {pe.get('transplant', 'censor')}ed).

| Code | Arm | Intervention | Ratio |
|---|---|---|---|
{arms}

| Visit | Target study day | Window (days) |
|---|---|---|
{visits}

{_day_one(trial)}

| Code | Endpoint | Unit | Analysis scale | Better |
|---|---|---|---|---|
{endpoints}
"""


def _day_one(trial: Trial) -> str:
    if trial.treatment.start == "randomization":
        return "Study day 1 is the day of randomization."
    return f"Study day 1 is the day of the first {trial.treatment.noun}."


def validation_markdown(errors, warnings, trial: Trial, source: str) -> str:
    """The validation report as a book page: a summary by rule, and where the full list is."""
    summary = summary_by_rule(errors, warnings)
    if summary.empty:
        body = "The export passed every rule of the data dictionary: no errors and no warnings."
    else:
        rows = "\n".join(f"| {r.severity} | `{r.rule}` | {r.count} | {r.examples} |" for r in summary.itertuples())
        body = ("Warnings are listed for review; they do not stop the build. Each is counted by rule, with the "
                "first examples (file, row as a spreadsheet numbers it, column).\n\n"
                "| Severity | Rule | Count | First examples |\n|---|---|---|---|\n" + rows)
    return f"""# Validation report

The {source} was validated against the data dictionary and the trial file `{Path(str(trial.source)).name}`.
{len(errors)} error(s), {len(warnings)} warning(s). The full list, one finding per row, is
`_build/validation/problems.csv`; the summary by rule is `_build/validation/summary.csv`.

{body}
"""


def _replace_dir(new: Path, target: Path) -> None:
    """Swap a fully written folder into place."""
    old = target.with_name(target.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    new.rename(target)
    if old.exists():
        shutil.rmtree(old)


class BuildError(RuntimeError):
    """A pipeline step failed; the message names the notebook and the failing cell's error."""


def validate(data: str, trial: Trial, seed: int | None, out_dir: Path) -> tuple[list, list]:
    """Validate the export (simulated first for "synthetic") and write the report to ``out_dir``."""
    if data == SYNTHETIC:
        with tempfile.TemporaryDirectory() as tmp:
            write_export(simulate_export(trial, seed=seed), tmp)
            _, errors, warnings = validate_export(tmp, trial)
    else:
        _, errors, warnings = validate_export(data, trial)
    write_validation_report(errors, warnings, out_dir)
    return errors, warnings


def run(data: str = SYNTHETIC, trial: str = paths.DEFAULT_TRIAL, seed: int | None = None,
        build_dir: Path = paths.BUILD, notebook_dir: Path = paths.NOTEBOOKS,
        generated_dir: Path = paths.GENERATED, log=print, cutoff: str | None = None) -> None:
    """Validate the data, write ADaM, execute every notebook with papermill; replace outputs only if all succeed."""
    import papermill as pm

    build_dir.mkdir(parents=True, exist_ok=True)
    staging = build_dir / ".staging"
    if staging.exists():
        shutil.rmtree(staging)
    for sub in ("results", "figures"):
        (staging / sub).mkdir(parents=True)
    data_param = data if data == SYNTHETIC else str(Path(data).resolve())
    trial_param = str(paths.trial_file(trial))
    cutoff_param = str(cutoff) if cutoff else None
    t0 = time.perf_counter()
    t = load_trial(trial_param).with_cutoff(cutoff_param)
    errors, warnings = validate(data_param, t, seed, staging / "validation")
    if errors:
        _replace_dir(staging / "validation", build_dir / "validation")
        raise ExportError(Path(data_param), errors, t)
    cohort = load_cohort(data_param, trial_param, seed, cutoff_param)
    write_adam(cohort.adam, staging / "data")
    log(f"[data] {cohort.source}: {len(cohort.adsl)} participants, {len(warnings)} warning(s), ADaM written "
        f"({time.perf_counter() - t0:.1f} s)")
    generated = staging / "generated"
    generated.mkdir()
    (generated / "trial.md").write_text(trial_markdown(cohort.trial), encoding="utf-8")
    (generated / "data_dictionary.md").write_text(data_dictionary_markdown(cohort.trial, cohort.export.tables), encoding="utf-8")
    (generated / "validation.md").write_text(validation_markdown(errors, warnings, cohort.trial, cohort.source),
                                             encoding="utf-8")
    params = {"data": data_param, "trial": trial_param, "seed": seed, "cutoff": cutoff_param,
              "output_dir": str(staging)}
    for nb in notebooks(notebook_dir):
        t0 = time.perf_counter()
        log(f"[run] {nb.name} ...")
        try:
            pm.execute_notebook(str(nb), str(generated / nb.name), parameters=params, cwd=str(notebook_dir),
                                progress_bar=False, kernel_name="python3")
        except pm.PapermillExecutionError as exc:
            raise BuildError(f"notebook {nb.name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}") from None
        clean_notebook(generated / nb.name, generated / nb.name)
        log(f"[run] {nb.name} done in {time.perf_counter() - t0:.1f} s")
    leaks = find_identifiers(staging, raw_identifiers(data_param, cohort.trial, seed))
    if leaks:
        where = "; ".join(f"{path.relative_to(staging)} ({column})" for path, column, _ in leaks[:10])
        shutil.rmtree(staging)
        raise BuildError(f"direct identifiers found in the outputs ({len(leaks)} hit(s): {where}); "
                         "nothing was published and the refused outputs were deleted")
    (staging / "config.yml").write_text(book_config(cohort.trial, cohort.source), encoding="utf-8")
    for sub, target in (("generated", generated_dir), ("data", build_dir / "data"), ("results", build_dir / "results"),
                        ("figures", build_dir / "figures"), ("validation", build_dir / "validation")):
        _replace_dir(staging / sub, target)
    (staging / "config.yml").replace(build_dir / "book_config.yml")
    shutil.rmtree(staging)


def book_config(trial: Trial, source: str, base: Path = paths.ROOT / "_config.yml") -> str:
    """The book's jupyter-book configuration for this build: the trial's title, and an announcement
    banner on every page at an interim look (the data cut-off)."""
    import yaml

    config = yaml.safe_load(base.read_text(encoding="utf-8"))
    config["title"] = f"{trial.id}: {trial.short_title}"
    if trial.is_interim:
        config.setdefault("html", {})["announcement"] = f"Interim build: {source}."
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def build_html(build_dir: Path = paths.BUILD, log=print) -> Path:
    """Build the HTML with jupyter-book (no execution) into staging; swap it into _build/html on success."""
    staging = build_dir / ".staging-book"
    if staging.exists():
        shutil.rmtree(staging)
    t0 = time.perf_counter()
    log("[book] jupyter-book build ...")
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(paths.ROOT), "--path-output", str(staging),
           "--warningiserror", "--keep-going", "--quiet"]
    if (build_dir / "book_config.yml").exists():
        cmd += ["--config", str(build_dir / "book_config.yml")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    index = staging / "_build" / "html" / "index.html"
    if proc.returncode != 0 or not index.exists():
        raise BuildError("jupyter-book build failed; the last good HTML is kept.\n" + proc.stdout[-4000:] + proc.stderr[-4000:])
    _replace_dir(staging / "_build" / "html", build_dir / "html")
    shutil.rmtree(staging)
    log(f"[book] built in {time.perf_counter() - t0:.1f} s")
    return build_dir / "html" / "index.html"


def refresh(only: list[str | Path] | None = None, log=print) -> None:
    """Re-execute notebooks/ (or only the named ones) in place with their default (synthetic) parameters,
    so nbval's reference outputs update."""
    import papermill as pm

    chosen = notebooks() if not only else [paths.NOTEBOOKS / Path(n).name for n in only]
    for nb in chosen:
        log(f"[refresh] {nb.name}")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / nb.name
            pm.execute_notebook(str(nb), str(out), cwd=str(paths.NOTEBOOKS), progress_bar=False, kernel_name="python3")
            clean_notebook(out, nb)


def clean_notebook(src: Path, dest: Path) -> None:
    """Store an executed notebook without papermill's volatile metadata (timings), so reruns diff cleanly.

    The cell papermill injects (it holds the run's paths) is tagged to be left out of the book.
    """
    import nbformat

    nb = nbformat.read(src, as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = tags + ["remove-cell"]
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            for out in cell.get("outputs", []):
                out.get("metadata", {}).pop("papermill", None)
    nbformat.write(nb, dest)
