"""The book's pipeline: raw export -> validate -> ADaM -> notebooks (results, figures) -> privacy scan -> HTML -> publish.

Every output of a build is written to its own staging folder and published together in one atomic
step, one build at a time; a failed or interrupted build leaves the last good book untouched.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import ensure_event_loop, run_sync
from traitlets.config import Config

from helpers import bundle, cache, freshness, paths, provenance
from helpers.analysis.ard import write_ard
from helpers.analysis.results import Results, kept_results
from helpers.chapter import SYNTHETIC, Cohort, cohort_from, load_cohort, read_data, save_cohort, save_result  # noqa: F401
from helpers.data.adam import write_adam
from helpers.data.blinding import arm_mentions, mask_effects, mask_text
from helpers.data.loading import ExportError, summary_by_rule, write_validation_report
from helpers.data.privacy import Identifiers, scan_for_identifiers
from helpers.data.schema import data_dictionary_markdown
from helpers.data.simulation import simulation_seed
from helpers.data.transport import write_xpt
from helpers.report.findings import key_results_csv
from helpers.report.prose import change_text, primary_what
from helpers.report.randomization import strata_text
from helpers.trial import Trial, load_trial



def notebooks(folder: Path = paths.NOTEBOOKS) -> list[Path]:
    """The book's chapters in order: notebooks/NN_*.ipynb."""
    return sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))


def _primary_rules(trial: Trial) -> str:
    """'horizon 168 days; Kidney failure censors follow-up for overall survival': the horizon and how
    each intercurrent event of the trial file enters the primary time-to-event endpoint (nothing about intercurrent
    events when the trial declares none)."""
    parts = [f"horizon {trial.horizon_days} days"]
    if trial.primary_endpoint.is_time_to_event:
        tte = trial.tte(trial.primary_endpoint.code)
        for e in trial.intercurrent_events:
            if e.code in tte.censors:
                parts.append(f"{e.label} censors follow-up for {tte.label.lower()}")
            elif e.code in tte.events:
                parts.append(f"{e.label} counts as an event")
    return "; ".join(parts)


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
    background = f"## Background\n\n{trial.background}\n\n" if trial.background else ""
    key = (f" The key secondary endpoint is the change in {trial.endpoint(trial.key_secondary).label} from baseline to "
           f"{trial.last_visit.label}, tested only if the primary endpoint is met." if trial.key_secondary else "")
    others = ", ".join(e.label for e in trial.endpoints if e.code not in (trial.key_secondary, pe.code))
    visits_text = ", ".join(v.label for v in trial.followup_visits)
    return f"""{interim}## The trial

**{trial.id}**: {trial.title}.

{trial.design.capitalize()} trial in {trial.population}; {trial.planned_n} participants enrolled over
{trial.accrual_months} months at the {trial.site}, followed for {trial.followup_weeks} weeks.
Randomization: {trial.randomization.method or 'method not stated in the trial file'}, {_block_sizes_text(trial)},
allocation ratio {':'.join(str(a.ratio) for a in trial.arms)}, {strata_text(trial)}.

**Primary endpoint**: {_primary_text(trial)}.

| Code | Arm | Intervention | Ratio |
|---|---|---|---|
{arms}

| Visit | Target study day | Window (days) |
|---|---|---|
{visits}

{_day_one(trial)}

{background}## Outcomes

The primary endpoint is {'' if pe.is_time_to_event else 'the '}{primary_what(trial)}.{key} The other secondary endpoints are {others}, at
{visits_text}.

| Code | Endpoint | Unit | Analysis scale | Better |
|---|---|---|---|---|
{endpoints}
"""


def _primary_text(trial: Trial) -> str:
    """The primary endpoint and how it is analysed: a horizon (time to event), or the MMRM contrast at a visit."""
    pe = trial.primary_endpoint
    if pe.is_time_to_event:
        return f"{pe.label} ({_primary_rules(trial)})"
    scale = "ratio of geometric means" if trial.endpoint(pe.code).log else "difference"
    return (f"{pe.label}: the {change_text(pe.code, trial.primary_visit.label, trial)}, analysed by the MMRM "
            f"contrast at that visit ({scale}, experimental arm against control), at two-sided level {trial.alpha:g}")


def data_source_markdown(data: str, source: str) -> str:
    """The introduction's sentence on the data this build runs on: the synthetic cohort, or the site's export."""
    if data == SYNTHETIC:
        return (f"This build runs on a **{source}** with the exact shape of the site's export, not on the trial's "
                'data: its numbers are not results of the trial, and its figures are stamped "SYNTHETIC DATA".\n')
    return f"This build runs on the site's export: {source}.\n"


def field_glossary_markdown(trial: Trial) -> str:
    """The glossary entries of the trial's field (the trial file's ``glossary``: a file of MyST glossary entries,
    relative to the trial file), as a second glossary on the glossary page; nothing when the file names none."""
    if trial.glossary is None:
        return ""
    entries = trial.glossary.read_text(encoding="utf-8").strip()
    return f"## Terms of the trial's field\n\n```{{glossary}}\n:sorted:\n\n{entries}\n```\n"


def _block_sizes_text(trial: Trial) -> str:
    """'block sizes 2 or 4' as the trial file states them, or that it does not."""
    sizes = trial.randomization.stated_block_sizes
    if not sizes:
        return "block sizes not stated in the trial file"
    return f"block size{'s' if len(sizes) > 1 else ''} {' or '.join(map(str, sizes))}"


def _day_one(trial: Trial) -> str:
    if not trial.has_dosing_file:
        return "Study day 1 is the day of randomization."
    return f"Study day 1 is the day of the first {trial.treatment.noun}."


def validation_markdown(errors, warnings, trial: Trial, source: str, effects: list | None = None) -> str:
    """The validation report as a book page: what the export mapping did (when there is one), a summary by rule,
    and where the full list is."""
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
{mapping_markdown(effects, trial)}
{body}
"""


def mapping_markdown(effects: list | None, trial: Trial) -> str:
    """What the export mapping did, file by file (read, renamed, recoded with counts, dates parsed by format, long
    results pivoted, units by count, left out): a section of the validation report."""
    if not effects:
        return ""
    rows = "\n".join(f"| {e.file} | {e.source} | {e.action} | {e.column} | {e.detail} | {e.count} |" for e in effects)
    return f"""
## What the export mapping did

The site's files were read as they were sent (their SHA-256 are in the provenance appendix) through the export
mapping `{Path(str(trial.export_mapping)).name}`; nothing in them was edited. Every problem below is named at the
raw file's own row and column. The same list is `_build/validation/mapping.csv`.

| Contract file | Source | Action | Column | Detail | Rows |
|---|---|---|---|---|---:|
{rows}
"""


class BuildError(RuntimeError):
    """A pipeline step failed; the message names the notebook and the failing cell's error."""


# --- one build at a time, published whole ------------------------------------------------------------
#
# A build writes a complete new tree (data, results, figures, validation, executed notebooks, HTML) into
# its own staging folder under <build_dir>.d/, and publishes it by pointing the <build_dir> symlink at it:
# one atomic rename. A lock file beside <build_dir> (freshness.build_lock) lets one build run at a time per
# checkout, and whether the published build is current is decided under it; a failed,
# interrupted or killed build leaves the published tree as it was, and its staging is removed (at once,
# or by the next build when the process was killed outright).

BOOK_WORK = "jupyter-book"
CACHE = "cache"  # <build_dir>.d/cache: results kept across builds (paths.BUILD_CACHE)
OUTPUT_FOLDERS = ("results", "figures", "tables")


def trees_dir(build_dir: Path) -> Path:
    """Where complete build trees live; <build_dir> is a symlink to the published one."""
    return build_dir.with_name(build_dir.name + ".d")


def failed_validation_dir(build_dir: Path) -> Path:
    """Where the validation report of an export that failed goes (the published book is left alone)."""
    return build_dir.with_name(build_dir.name + "-validation")


@contextlib.contextmanager
def _terminate_cleanly():
    """Turn SIGTERM into SystemExit during a build, so that its staging is removed as after Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise SystemExit(f"build stopped by signal {signum}")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def publish(tree: Path, build_dir: Path) -> None:
    """Make ``tree`` the published build in one atomic step (a symlink swap), then drop older trees."""
    trees = trees_dir(build_dir)
    final = trees / f"build-{uuid.uuid4().hex[:12]}"
    tree.rename(final)
    if build_dir.exists() and not build_dir.is_symlink():
        build_dir.rename(trees / f"previous-{uuid.uuid4().hex[:12]}")
    link = build_dir.with_name(f".{build_dir.name}.{final.name}")
    os.symlink(os.path.relpath(final, build_dir.parent), link)
    os.replace(link, build_dir)
    for old in trees.iterdir():
        if old != final and not old.name.startswith(BOOK_WORK) and old.name != CACHE:
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()


def build(data: str = SYNTHETIC, trial: str = paths.DEFAULT_TRIAL, seed: int | None = None,
          cutoff: str | None = None, html: bool = True, build_dir: Path = paths.BUILD,
          notebook_dir: Path = paths.NOTEBOOKS, log=print, blinded: bool = False, jobs: int | None = None,
          force: bool = False, mapping: str | None = None, pdf: bool = False, marking: str | None = None) -> Path:
    """The whole book: validate, derive ADaM, run the notebooks whose inputs changed (all with ``force``), scan
    for identifiers, build the HTML (unless ``html`` is False) and the PDF (with ``pdf``; ``marking`` "OPEN" or
    "CLOSED" marks a DSMB report), and publish every output together. Does nothing when the published build came
    from the same inputs. ``mapping`` (a path, or "none") overrides the trial file's export mapping. Returns the
    published index.html."""
    build_dir = Path(build_dir)
    with freshness.build_lock(build_dir, log), _terminate_cleanly():
        if pdf and not html:
            raise BuildError("a PDF is printed from the HTML book: build it with html=True")
        if not force and freshness.is_current(build_dir, data, paths.trial_file(trial), seed, cutoff, blinded, html,
                                              notebook_dir, mapping, pdf, marking):
            log(f"[build] nothing changed since the published build in {build_dir}: it is current")
            return build_dir / "html" / "index.html"
        trees = trees_dir(build_dir)
        trees.mkdir(parents=True, exist_ok=True)
        for stale in trees.glob("staging-*"):
            shutil.rmtree(stale, ignore_errors=True)
        staging = trees / f"staging-{uuid.uuid4().hex[:12]}"
        try:
            tree = staging / "tree"
            trial_obj = _run_into(tree, staging, data, trial, seed, cutoff, build_dir, notebook_dir, log, blinded,
                                  jobs or os.cpu_count() or 1, html, force, mapping, pdf)
            if html:
                _html_into(tree, staging, trial_obj, log, build_dir)
            if pdf:
                from helpers.pdf import write_pdf

                write_pdf(tree, book_work_dir(build_dir, trial_obj.is_blinded), trial_obj, log, marking)
            if blinded:
                check_blinding(tree, trial_obj)
            publish(tree, build_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return build_dir / "html" / "index.html"


def run(data: str = SYNTHETIC, trial: str = paths.DEFAULT_TRIAL, seed: int | None = None,
        build_dir: Path = paths.BUILD, notebook_dir: Path = paths.NOTEBOOKS, log=print,
        cutoff: str | None = None, blinded: bool = False, jobs: int | None = None, force: bool = False,
        mapping: str | None = None) -> None:
    """Everything but the HTML (``make run``): data, results, figures and executed notebooks, published together."""
    build(data, trial, seed, cutoff, html=False, build_dir=build_dir, notebook_dir=notebook_dir, log=log,
          blinded=blinded, jobs=jobs, force=force, mapping=mapping)


def check_blinding(tree: Path, trial: Trial) -> None:
    """Refuse to publish a blinded build in which any file names an arm of the real trial."""
    hits = arm_mentions(tree, trial.masked_from)
    if hits:
        where = "; ".join(f"{path.relative_to(tree)} ({term!r})" for path, term in hits[:10])
        raise BuildError(f"blinded build: {len(hits)} file(s) name an arm ({where}); nothing was published")


def _run_into(tree: Path, staging: Path, data, trial, seed, cutoff, build_dir: Path, notebook_dir: Path, log,
              blinded: bool, jobs: int, html: bool, force: bool = False, mapping: str | None = None,
              pdf: bool = False) -> Trial:
    """Read and validate the export once, derive ADaM once, run the notebooks whose inputs changed (``jobs`` at a
    time; the others are taken from the published build), scan the outputs for identifiers."""
    for sub in OUTPUT_FOLDERS + ("generated",):
        (tree / sub).mkdir(parents=True)
    data_param = data if data == SYNTHETIC else str(Path(data).resolve())
    trial_param = str(paths.trial_file(trial))
    cutoff_param = str(cutoff) if cutoff else None
    t0 = time.perf_counter()
    t = load_trial(trial_param).with_cutoff(cutoff_param).with_mapping(mapping)
    read = read_data(data_param, t, seed)
    write_validation_report(read.errors, read.warnings, tree / "validation", read.effects)
    if read.errors:
        write_validation_report(read.errors, read.warnings, failed_validation_dir(build_dir), read.effects)
        raise ExportError(Path(data_param), read.errors, t)
    cohort = cohort_from(read, data_param, t, seed, blinded)
    effects = mask_effects(read.effects, cohort.trial) if blinded else read.effects
    if blinded:
        write_validation_report(read.errors, read.warnings, tree / "validation", effects)
        mask_files(tree / "validation", cohort.trial)
    write_adam(cohort.adam, tree / "data")
    write_xpt(cohort.adam, tree / "data", trial=cohort.trial)
    log(f"[data] {cohort.source}: {len(cohort.adsl)} participants, {len(read.warnings)} warning(s), ADaM written "
        f"({time.perf_counter() - t0:.1f} s)")
    t0 = time.perf_counter()
    params = {"data": data_param, "trial": trial_param, "seed": seed, "cutoff": cutoff_param, "blinded": blinded}
    common = freshness.common_key(data_param, Path(trial_param), params | {"mapping": mapping})
    computed = cohort.results
    cohort.results = kept_results(computed, common, trees_dir(build_dir) / CACHE / "results")
    cohort_file = save_cohort(cohort, staging / "cohort.pickle")
    write_results(cohort.results, tree)
    how = "once" if cohort.results is computed else "kept from an earlier build of the same inputs"
    log(f"[analyses] every analysis of the plan, {how}: results/ard.csv ({time.perf_counter() - t0:.1f} s)")
    generated = tree / "generated"
    (generated / "trial.md").write_text(trial_markdown(cohort.trial), encoding="utf-8")
    (generated / "field_glossary.md").write_text(field_glossary_markdown(cohort.trial), encoding="utf-8")
    (generated / "data_source.md").write_text(data_source_markdown(data, cohort.source), encoding="utf-8")
    (generated / "data_dictionary.md").write_text(data_dictionary_markdown(cohort.trial, cohort.export.tables),
                                                  encoding="utf-8")
    validation_page = validation_markdown(read.errors, read.warnings, cohort.trial, cohort.source, effects)
    (generated / "validation.md").write_text(mask_text(validation_page, cohort.trial) if blinded else validation_page,
                                             encoding="utf-8")
    params |= {"cohort_file": str(cohort_file)}
    shown = {"data": data if data == SYNTHETIC else Path(data_param).name, "trial": os.path.relpath(trial_param, paths.ROOT),
             "seed": seed if seed is not None else simulation_seed(cohort.trial) if data == SYNTHETIC else None,
             "cutoff": cutoff_param, "blinded": blinded}
    record = provenance.collect(cohort.trial, read.inputs, shown, cohort.source, read.mapping)
    chapters = notebooks(notebook_dir)
    published = build_dir.resolve() if build_dir.is_symlink() else build_dir
    manifest, runs = run_notebooks(chapters, common, params, tree, staging, published, notebook_dir, log, jobs, force)
    manifest["build"] = freshness.build_key(chapters, common, html)
    (generated / freshness.MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    (generated / "downloads.md").write_text(bundle.downloads_markdown(tree, bundle.table_names(sorted(generated.glob("*.ipynb"))),
                                                                        cohort.trial, bundle.dsmb_dir(build_dir), pdf),
                                            encoding="utf-8")
    (generated / "provenance.md").write_text(provenance.markdown(record), encoding="utf-8")
    provenance.write_json(record | {"notebooks": runs},
                          tree / "results" / "provenance.json")
    leaks = _scan_for_identifiers(tree, read.identifiers, build_dir)
    if leaks:
        where = "; ".join(f"{path.relative_to(tree)} ({column})" for path, column, _ in leaks[:10])
        raise BuildError(f"direct identifiers found in the outputs ({len(leaks)} hit(s): {where}); "
                         "nothing was published and the refused outputs were deleted")
    (tree / "book_config.yml").write_text(book_config(cohort.trial, banner(data, cohort.trial, record)), encoding="utf-8")
    return cohort.trial


def _scan_for_identifiers(tree: Path, identifiers: Identifiers, build_dir: Path) -> list:
    """The identifiers found in the build's outputs. A file whose content an earlier build of this folder found
    free of the same identifiers (``Identifiers.digest``) is not read again: the last build's clean files are
    kept by digest, never by name or content."""
    path = trees_dir(build_dir) / CACHE / "privacy" / f"{identifiers.digest()}.pickle"
    leaks, clean = scan_for_identifiers(tree, identifiers, cache.read(path, lambda v: isinstance(v, set)) or set())
    with contextlib.suppress(OSError):
        cache.write(path, clean, keep=cache.KEPT)
    return leaks


def write_results(results: Results, tree: Path) -> None:
    """The analysis results dataset (``results/ard.csv`` and ``.json``) and the result tables as its views
    (``key_results`` with the summary page's cell text), and the design's simulated trials."""
    write_ard(results.ard, tree / "results")
    for name in results.tables():
        view = results.view(name)
        save_result(key_results_csv(view) if name == "key_results" else view, tree, name)
    save_result(results.design[0], tree, "design_replicates")


def run_notebooks(chapters: list[Path], common: dict, params: dict, tree: Path, staging: Path, published: Path,
                  notebook_dir: Path, log, jobs: int, force: bool = False) -> dict:
    """Run the stale notebooks, ``jobs`` at a time, each into its own output folder merged into ``tree``; copy the
    others, with the outputs they recorded, from the published build. Returns the new manifest (each notebook's key
    and outputs) and the run times (kept out of the manifest, so that equal builds give equal files)."""
    old = freshness.read_manifest(published)
    stale = chapters if force else freshness.stale(chapters, common, old, published)
    entries, runs = {}, {}
    for nb in chapters:
        if nb not in stale:
            entry = old["notebooks"][nb.name]
            for f in entry["files"] + [f"generated/{nb.name}"]:
                (tree / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(published / f, tree / f)
            entries[nb.name], runs[nb.name] = entry, {"seconds": None, "reused": True}
    if stale:
        log(f"[run] {len(stale)} of {len(chapters)} notebook(s) to run, {min(jobs, len(stale))} at a time: "
            + ", ".join(nb.name for nb in stale))
    else:
        log("[run] every notebook is current: reused from the published build")
    with contextlib.chdir(notebook_dir), inline_figures():
        done = run_on_kernels(stale, max(1, jobs), lambda nb, km: _run_one(nb, params, tree, staging, log, km))
    for nb in stale:
        files, seconds = done[nb.name]
        entries[nb.name] = {"key": freshness.notebook_key(nb, common), "files": files}
        runs[nb.name] = {"seconds": seconds, "reused": False}
    return {"notebooks": {nb.name: entries[nb.name] for nb in chapters}}, {nb.name: runs[nb.name] for nb in chapters}


RESET = ("get_ipython().run_line_magic('reset', '-f')\n"
         "__import__('matplotlib.pyplot').pyplot.close('all')\n"
         "get_ipython().execution_count = 1")


def run_on_kernels(notebooks: list[Path], kernels: int, run) -> dict:
    """``run(notebook, kernel_manager)`` for every notebook, on ``kernels`` long-lived kernels (one per thread),
    each taking the next notebook when it is free. A kernel starts once and keeps its imports (about 4 s per
    chapter); before each notebook after its first, its namespace, figures and execution count are reset
    (``RESET``), so a chapter sees what a fresh kernel would. The first failure stops the others taking more
    notebooks and is raised (the earliest notebook's, in order); so is an interruption, once the notebooks
    running have finished and their kernels are shut down. Returns ``run``'s results by notebook name.

    ``execute`` closes each notebook's kernel client and each thread its event loop: a build run in a long-lived
    process (as the tests run them) leaves no socket open."""
    queue, lock, results, errors = list(notebooks), threading.Lock(), {}, {}

    def worker() -> None:
        nb, km = None, None
        try:
            with tempfile.TemporaryDirectory(prefix="kernel-") as folder:
                try:
                    while True:
                        with lock:
                            if not queue or errors:
                                return
                            nb = queue.pop(0)
                        if km is None:
                            km = start_kernel(Path(folder))
                        else:
                            reset_kernel(km)
                        results[nb.name] = run(nb, km)
                finally:
                    if km is not None:
                        with contextlib.suppress(Exception):
                            run_sync(km.shutdown_kernel)(now=False)
                    with contextlib.suppress(Exception):
                        ensure_event_loop().close()
        except BaseException as exc:  # noqa: BLE001 - raised by the caller
            with lock:
                errors[nb] = exc

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(kernels, len(notebooks)))]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    except BaseException:
        with lock:
            queue.clear()
        for t in threads:
            t.join()
        raise
    if errors:
        raise errors[min(errors, key=lambda nb: notebooks.index(nb) if nb in notebooks else -1)]
    return results


def start_kernel(folder: Path) -> QuietKernelManager:
    """A quiet local kernel (``QuietKernelManager``) on IPC sockets in ``folder``, without a history database
    (the reset between notebooks sets the execution count back)."""
    km = QuietKernelManager(kernel_name="python3", config=_kernel_config(folder))
    run_sync(km.start_kernel)(extra_arguments=["--HistoryManager.enabled=False"])
    return km


def reset_kernel(km: QuietKernelManager) -> None:
    """Clear a kernel between two notebooks: its names, figures and execution count (imported modules stay)."""
    kc = km.blocking_client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        reply = kc.execute_interactive(RESET, store_history=False, allow_stdin=False, timeout=60,
                                       output_hook=lambda msg: None)
    finally:
        kc.stop_channels()
    if reply["content"]["status"] != "ok":
        raise BuildError(f"the kernel could not be reset between notebooks: {reply['content'].get('evalue')}")


def _run_one(nb: Path, params: dict, tree: Path, staging: Path, log, km: QuietKernelManager | None = None
             ) -> tuple[list[str], float]:
    """Execute one notebook with papermill (on kernel ``km``, else a new one) into its own output folder, then
    move its outputs into ``tree``. The caller has made the notebooks' folder the working directory: papermill's
    own ``cwd`` changes it per call, which notebooks running in parallel threads would undo for one another."""
    import papermill as pm

    t0 = time.perf_counter()
    out = staging / "outputs" / nb.stem
    for sub in OUTPUT_FOLDERS:
        (out / sub).mkdir(parents=True)
    log(f"[run] {nb.name} ...")
    executed = tree / "generated" / nb.name
    try:
        execute(nb, executed, parameters=params | {"output_dir": str(out)}, km=km)
    except pm.PapermillExecutionError as exc:
        raise BuildError(f"notebook {nb.name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}") from None
    clean_notebook(executed, executed, {str(out): "_build", params["cohort_file"]: "_build.d/cohort.pickle"})
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    for f in files:
        (tree / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(out / f, tree / f)
    seconds = round(time.perf_counter() - t0, 1)
    log(f"[run] {nb.name} done in {seconds:.1f} s")
    return files, seconds


INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


@contextlib.contextmanager
def inline_figures():
    """Kernels draw figures inline (PNG in the notebook), whatever matplotlib backend the caller's environment
    names (a test run sets Agg, which would leave only "<Figure size ...>" text in the book)."""
    before = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = INLINE_BACKEND
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = before


class QuietKernelManager(AsyncKernelManager):
    """A kernel manager that shuts a finished kernel down with a shutdown request only. jupyter_client sends an
    interrupt (SIGINT) first, which the kernel, if busy with any message at that instant, logs as
    "ERROR | KeyboardInterrupt caught in kernel" on a good build. A cell that hangs is still interrupted by
    nbclient's timeout, and a kernel that ignores the request is still killed."""

    async def _async_interrupt_kernel(self) -> None:
        if not self.shutting_down:
            await super()._async_interrupt_kernel()

    def client(self, **kwargs):
        """A client of this kernel, remembered for ``close_clients``: nbclient leaves open the client it makes for
        a kernel it was given (``run_on_kernels``), a dozen file descriptors each."""
        kc = super().client(**kwargs)
        self.__dict__.setdefault("_clients", []).append(kc)
        return kc

    def close_clients(self) -> None:
        for kc in self.__dict__.pop("_clients", []):
            kc.stop_channels()


def execute(nb: Path, out: Path, kernel_name: str = "python3", km: QuietKernelManager | None = None,
            **papermill_args) -> None:
    """Execute a notebook with papermill on a quiet local kernel: it talks over local (IPC) sockets in a private
    temporary folder rather than unencrypted TCP ports, so nothing else on the machine can reach it and it logs no
    warning, and it is shut down without an interrupt (``QuietKernelManager``). ``kernel_name``: the kernel spec
    (the build's is this environment's own python3; ``helpers.lab`` installs the analysts' one). ``km``: a
    running kernel to use (``run_on_kernels``), left running; without it one is started and shut down."""
    import papermill as pm

    if km is not None:
        try:
            pm.execute_notebook(str(nb), str(out), progress_bar=False, kernel_name=kernel_name, km=km,
                                **papermill_args)
        finally:
            km.close_clients()
        return
    with tempfile.TemporaryDirectory(prefix="kernel-") as folder:
        pm.execute_notebook(str(nb), str(out), progress_bar=False, kernel_name=kernel_name,
                            config=_kernel_config(Path(folder)), kernel_manager_class=QuietKernelManager,
                            **papermill_args)


def _kernel_config(folder: Path) -> Config:
    return Config({"KernelManager": {"transport": "ipc", "ip": str(folder / "k")}})


def mask_files(folder: Path, trial: Trial) -> None:
    """Mask the arm names in the text files of ``folder`` (the validation report of a blinded build)."""
    for path in Path(folder).glob("*.csv"):
        path.write_text(mask_text(path.read_text(encoding="utf-8"), trial), encoding="utf-8")


def banner(data: str, trial: Trial, record: dict) -> str:
    """The line every page carries: the data source (synthetic with its seed, or the export's checksum),
    the data cut-off at an interim look, and the blinding status."""
    if data == SYNTHETIC:
        source = (f"SYNTHETIC DATA (simulated, seed {record['parameters']['seed']}): not results of the trial")
    else:
        source = f"Site export {record['parameters']['data']} (SHA-256 {record['export_sha256'][:12]})"
    cut = f"Interim build, data cut-off {trial.cutoff:%d %B %Y}" if trial.is_interim else "Final analysis"
    blinding = record["blinding"]
    return f"{source} · {cut} · {blinding[0].upper()}{blinding[1:]}"


def book_config(trial: Trial, announcement: str, base: Path = paths.ROOT / "_config.yml") -> str:
    """The book's jupyter-book configuration for this build: the trial's title, and the banner on every page."""
    import yaml

    config = yaml.safe_load(base.read_text(encoding="utf-8"))
    config["title"] = f"{trial.id}: {trial.short_title}"
    config.setdefault("html", {})["announcement"] = announcement
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def book_work_dir(build_dir: Path, blinded: bool) -> Path:
    """jupyter-book's incremental work folder, one per blinding state: a blinded build never reuses a page or
    search index of an unblinded one, nor the reverse."""
    return trees_dir(build_dir) / (BOOK_WORK + ("-blinded" if blinded else ""))


def _book_files(tree: Path) -> dict[str, Path]:
    """The jupyter-book source of this build, relative path -> file: the book's pages and table of contents, the
    build's configuration and generated pages."""
    files = {"_toc.yml": paths.ROOT / "_toc.yml", "_config.yml": tree / "book_config.yml"}
    files |= {str(p.relative_to(paths.ROOT)): p for p in paths.BOOK.rglob("*")
              if p.is_file() and "generated" not in p.relative_to(paths.BOOK).parts}
    files |= {f"book/generated/{p.relative_to(tree / 'generated')}": p for p in (tree / "generated").rglob("*")
              if p.is_file()}
    return files


def sync_source(files: dict[str, Path], src: Path) -> list[str]:
    """Make ``src`` hold exactly ``files``, rewriting only those whose content changed (so that jupyter-book, which
    goes by modification times, rebuilds only changed pages). Returns the paths written."""
    written = []
    for rel, source in files.items():
        target = src / rel
        if not target.exists() or target.read_bytes() != source.read_bytes():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            written.append(rel)
    for extra in [p for p in src.rglob("*") if p.is_file() and str(p.relative_to(src)) not in files]:
        extra.unlink()
    return written


def _html_into(tree: Path, staging: Path, trial: Trial, log, build_dir: Path) -> None:
    """Build the HTML with jupyter-book (no execution, warnings are errors) into ``tree``. Its work folder persists
    between builds, so only changed pages are rebuilt; a failed or interrupted run leaves it to be rebuilt whole."""
    t0 = time.perf_counter()
    work = book_work_dir(build_dir, trial.is_blinded)
    dirty = work / "INCOMPLETE"
    if dirty.exists():
        shutil.rmtree(work)
    src, out = work / "src", work / "out"
    src.mkdir(parents=True, exist_ok=True)
    dirty.touch()
    changed = sync_source(_book_files(tree), src)
    log(f"[book] jupyter-book build ({len(changed)} changed source file(s)) ...")
    cmd = paths.jupyter_book("build", str(src), "--path-output", str(out), "--warningiserror", "--keep-going",
                             "--quiet")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    index = out / "_build" / "html" / "index.html"
    if proc.returncode != 0 or not index.exists():
        shutil.rmtree(work, ignore_errors=True)
        raise BuildError("jupyter-book build failed; the last good book is kept.\n" + proc.stdout[-4000:] + proc.stderr[-4000:])
    dirty.unlink()
    shutil.copytree(out / "_build" / "html", tree / "html")
    bundle.write_downloads(tree, tree / "html", trial)
    log(f"[book] built in {time.perf_counter() - t0:.1f} s")


def refresh(only: list[str | Path] | None = None, log=print) -> None:
    """Re-execute notebooks/ (or only the named ones) in place with their default (synthetic) parameters,
    so nbval's reference outputs update."""
    chosen = notebooks() if not only else [paths.NOTEBOOKS / Path(n).name for n in only]
    for nb in chosen:
        log(f"[refresh] {nb.name}")
        with tempfile.TemporaryDirectory() as tmp, inline_figures():
            out = Path(tmp) / nb.name
            execute(nb, out, cwd=str(paths.NOTEBOOKS))
            clean_notebook(out, nb)


def clean_notebook(src: Path, dest: Path, replace: dict[str, str] | None = None) -> None:
    """Store an executed notebook without papermill's volatile metadata (timings, the random id of the cell
    it injects, the build's staging path), so that two builds of the same inputs give identical files.

    The cell papermill injects (it holds the run's parameters) is tagged to be left out of the book.
    """
    import nbformat

    nb = nbformat.read(src, as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags:
            cell["id"] = "injected-parameters"
            for old, new in (replace or {}).items():
                cell.source = cell.source.replace(old, new)
            if "remove-cell" not in tags:
                cell.metadata["tags"] = tags + ["remove-cell"]
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            for out in cell.get("outputs", []):
                out.get("metadata", {}).pop("papermill", None)
    nbformat.write(nb, dest)
