"""The pipeline: papermill run into staging, failures name the notebook and keep the last good outputs."""
from __future__ import annotations

import re
import sys
import subprocess
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from conftest import write_tiny_notebook
from tolerances import assert_frame_close
from helpers import paths, pipeline
from helpers.trial import load_trial


@pytest.fixture()
def dirs(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    return {"build_dir": tmp_path / "_build", "notebook_dir": nbs}


def test_run_writes_adam_and_executed_notebooks(dirs):
    write_tiny_notebook(dirs["notebook_dir"] / "01_ok.ipynb",
              "from pathlib import Path\nPath(output_dir, 'results', 'x.csv').write_text(str(seed))")
    pipeline.run(seed=7, log=lambda *_: None, **dirs)
    assert sorted(p.name for p in (dirs["build_dir"] / "data").iterdir()) == ["adlb.csv", "adlb.xpt", "adsl.csv", "adsl.xpt",
                                                                             "adtte.csv", "adtte.xpt"]
    assert (dirs["build_dir"] / "results" / "x.csv").read_text() == "7"
    executed = nbformat.read(dirs["build_dir"] / "generated" / "01_ok.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "remove-cell" in injected[0].metadata["tags"]
    assert "papermill" not in executed.metadata
    assert {"trial.md", "data_dictionary.md"} <= {p.name for p in (dirs["build_dir"] / "generated").iterdir()}
    assert not list(pipeline.trees_dir(dirs["build_dir"]).glob("staging-*"))


def test_failing_notebook_names_itself_and_keeps_last_good_outputs(dirs):
    write_tiny_notebook(dirs["notebook_dir"] / "01_ok.ipynb", "1 + 1")
    pipeline.run(log=lambda *_: None, **dirs)
    before = (dirs["build_dir"] / "data" / "adsl.csv").read_bytes()
    write_tiny_notebook(dirs["notebook_dir"] / "02_bad.ipynb", "raise ValueError('bilirubin out of range')")
    with pytest.raises(pipeline.BuildError, match=r"02_bad.ipynb failed in cell \d+: ValueError: bilirubin out of range"):
        pipeline.run(seed=99, log=lambda *_: None, **dirs)
    assert (dirs["build_dir"] / "data" / "adsl.csv").read_bytes() == before
    assert sorted(p.name for p in (dirs["build_dir"] / "generated").glob("*.ipynb")) == ["01_ok.ipynb"]


def test_invalid_export_stops_before_any_notebook(dirs, export_copy):
    labs = pd.read_csv(export_copy / "labs.csv", dtype=str)
    labs.loc[0, "alt"] = "high"
    labs.to_csv(export_copy / "labs.csv", index=False)
    write_tiny_notebook(dirs["notebook_dir"] / "01_ok.ipynb", "1 + 1")
    with pytest.raises(Exception, match="labs.csv, row 2, column alt"):
        pipeline.run(data=str(export_copy), log=lambda *_: None, **dirs)
    assert not dirs["build_dir"].exists()
    assert (pipeline.failed_validation_dir(dirs["build_dir"]) / "problems.csv").exists()


def _tree(build_dir):
    """Every file of the published build and its bytes."""
    return {p.relative_to(build_dir): p.read_bytes() for p in sorted(build_dir.rglob("*")) if p.is_file()}


def test_failed_html_build_keeps_the_whole_last_good_book(dirs, monkeypatch):
    write_tiny_notebook(dirs["notebook_dir"] / "01_ok.ipynb", "1 + 1")
    pipeline.run(seed=1, log=lambda *_: None, **dirs)
    before = _tree(dirs["build_dir"])
    run = subprocess.run
    monkeypatch.setattr(subprocess, "run", lambda cmd, *a, **k: subprocess.CompletedProcess(cmd, 1, "boom", "")
                        if "jupyter_book" in " ".join(map(str, cmd)) else run(cmd, *a, **k))
    with pytest.raises(pipeline.BuildError, match="last good book is kept"):
        pipeline.build(seed=2, log=lambda *_: None, **dirs)
    assert _tree(dirs["build_dir"]) == before, "data, results and notebooks of the failed build must not be published"
    assert sorted(p.name for p in pipeline.trees_dir(dirs["build_dir"]).iterdir()) == sorted(
        [dirs["build_dir"].resolve().name, pipeline.CACHE]), "the published tree and what builds keep, nothing else"


def test_load_cohort_synthetic_equals_committed_export():
    synthetic = pipeline.load_cohort("synthetic")
    committed = pipeline.load_cohort(str(paths.SYNTHETIC))
    pd.testing.assert_frame_equal(synthetic.adsl, committed.adsl)
    pd.testing.assert_frame_equal(synthetic.adlb, committed.adlb)


def test_committed_synthetic_export_is_the_default_simulation(tmp_path):
    from helpers.data.simulation import simulate_export, write_export
    from helpers.trial import load_trial

    write_export(simulate_export(load_trial()), tmp_path)
    for path in paths.SYNTHETIC.glob("*.csv"):
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), f"{path.name}: run `python -m helpers simulate`"


def test_sister_trial_runs_through_loader_and_adam_without_code_changes():
    cohort = pipeline.load_cohort("synthetic", "NCT06242405")
    assert len(cohort.adsl) == 92
    assert set(cohort.adsl["TRT01P"]) == {"Single infusion", "Double infusion"}
    assert sorted(cohort.adlb["AVISITN"].unique()) == [0, 24]
    assert "Single infusion" in pipeline.trial_markdown(cohort.trial)


def test_cli_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "helpers", "--help"], capture_output=True,
                         text=True, cwd=paths.ROOT)
    for command in ("simulate", "validate", "run", "build", "refresh"):
        assert command in out.stdout


@pytest.mark.slow
def test_book_notebooks_run_on_the_sister_trial(tmp_path):
    """Every chapter executes on another trial's export (another seed, arms and visits) with no code change."""
    pipeline.run(trial="NCT06242405", seed=3, build_dir=tmp_path / "_build",
                 log=lambda *_: None)
    executed = sorted(p.name for p in (tmp_path / "_build" / "generated").glob("*.ipynb"))
    assert executed == [p.name for p in pipeline.notebooks()]
    adsl = pd.read_csv(tmp_path / "_build" / "data" / "adsl.csv")
    assert len(adsl) == 92


def test_save_result_writes_tidy_csv_only_with_an_output_dir(tmp_path):
    table = pd.DataFrame({"PARAMCD": ["ALT"], "estimate": [0.1234567890123]})
    assert pipeline.save_result(table, None, "x") is None
    path = pipeline.save_result(table, tmp_path, "x")
    assert path.read_text() == "PARAMCD,estimate\nALT,0.123456789\n"


@pytest.mark.slow
def test_book_notebooks_run_on_a_smaller_panel_oral_trial_at_its_cutoff(tmp_path):
    """DEMO-ORAL: no ALT, INR or sodium (so no MELD or Child-Pugh), day 1 at randomization with no
    infusion file, missing values, and the trial file's data cut-off; every chapter runs unchanged."""
    build = tmp_path / "_build"
    pipeline.build(trial="DEMO-ORAL", build_dir=build, log=lambda *_: None)
    assert sorted(p.name for p in (build / "generated").glob("*.ipynb")) == [p.name for p in pipeline.notebooks()]
    adlb = pd.read_csv(build / "data" / "adlb.csv")
    assert set(adlb["PARAMCD"]) == {"AST", "ALP", "TBIL", "ALB", "PT", "CREAT"}
    assert (adlb["LBSTAT"] == "NOT DONE").any()
    adsl = pd.read_csv(build / "data" / "adsl.csv")
    assert (adsl["DCUTDT"] == "2026-08-17").all() and (adsl["EOSSTT"] == "ONGOING").any()
    assert (adsl["TRTSDT"] == adsl["RANDDT"]).all()
    assert "Interim build" in (build / "generated" / "trial.md").read_text()
    assert "announcement" in (build / "book_config.yml").read_text()
    summary = (build / "html" / "book" / "generated" / "00_summary.html").read_text()
    assert "Interim build (data cut-off 17 August 2026)" in summary and "Oral drug" in summary
    assert "Class not derived in this trial" in (build / "html" / "book" / "generated" / "04_outcomes.html").read_text()


@pytest.mark.slow
def test_interim_build_three_months_after_accrual_starts(tmp_path):
    """An early interim look at this trial: nobody has reached week 24; every chapter still runs, visits not
    yet due are not missed, and survival at the horizon counts only participants whose status there is known."""
    build = tmp_path / "_build"
    pipeline.run(cutoff="2025-10-01", build_dir=build, log=lambda *_: None)
    adsl = pd.read_csv(build / "data" / "adsl.csv")
    assert (pd.to_datetime(adsl["RANDDT"]) <= "2025-10-01").all() and len(adsl) < 32
    survival = pd.read_csv(build / "results" / "survival.csv")
    fisher = survival[survival["ANALYSIS"].str.startswith("Fisher")]
    assert (fisher["N"] == fisher["EVENTS"]).all(), "nobody can be known alive at day 168 after 3 months"
    km = survival[survival["ANALYSIS"].str.startswith("KM survival") & (survival["PARAMCD"] == "OS")]
    assert km["ESTIMATE"].isna().all(), "S(168) is not defined when nobody was followed that long"
    assert (build / "generated" / "validation.md").exists()


@pytest.mark.slow
def test_clean_export_gives_the_same_results_as_before(tmp_path, clean_dir):
    """Every result table on the clean synthetic export is the stored reference: same rows and text, every
    number within its quantity's tolerance plus one unit in the 10th significant digit (the files' %.10g)."""
    pipeline.run(data=str(clean_dir), build_dir=tmp_path / "_build",
                 log=lambda *_: None)
    reference = paths.ROOT / "tests" / "fixtures" / "clean_results"
    for expected in sorted(reference.glob("*.csv")):
        built = tmp_path / "_build" / "results" / expected.name
        assert_frame_close(pd.read_csv(built), pd.read_csv(expected), f"{expected.name} changed on the clean export",
                           significant_digits=10)


# --- one build at a time, published whole --------------------------------------------------------

_CHILD = """
import sys, time
from pathlib import Path
from helpers import pipeline
seed, build, nbs, mode = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
if mode == "hang-in-book":
    run = pipeline.subprocess.run
    pipeline.subprocess.run = lambda cmd, *a, **k: time.sleep(600) if "jupyter_book" in " ".join(map(str, cmd)) else run(cmd, *a, **k)
pipeline.build(seed=seed, build_dir=build, notebook_dir=nbs, html=mode != "data-only", log=lambda m: print(m, flush=True))
"""


def _child(tmp_path, seed, mode="data-only"):
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    return subprocess.Popen([sys.executable, str(script), str(seed), str(tmp_path / "_build"), str(tmp_path / "notebooks"),
                             mode], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(proc, text, timeout=120):
    import select
    import time as _time

    deadline, seen = _time.monotonic() + timeout, []
    while _time.monotonic() < deadline:
        if not select.select([proc.stdout], [], [], max(deadline - _time.monotonic(), 0))[0]:
            break
        line = proc.stdout.readline()
        seen.append(line)
        if text in line:
            return "".join(seen)
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"never saw {text!r}: {''.join(seen)}")


def _slowwrite_tiny_notebook(nbs):
    write_tiny_notebook(nbs / "01_slow.ipynb", "import time\nfrom pathlib import Path\ntime.sleep(20)\n"
                                     "Path(output_dir, 'results', 'seed.csv').write_text(str(seed))")


def _consistent(build_dir) -> int:
    """The published build's seed, after checking that its data and results come from that one build."""
    seed = int((build_dir / "results" / "seed.csv").read_text())
    adsl = pd.read_csv(build_dir / "data" / "adsl.csv")
    expected = pipeline.load_cohort("synthetic", seed=seed).adsl
    assert adsl["RANDDT"].tolist() == expected["RANDDT"].dt.strftime("%Y-%m-%d").tolist()
    return seed


@pytest.mark.slow
def test_concurrent_builds_wait_for_each_other_and_never_mix(tmp_path):
    (tmp_path / "notebooks").mkdir()
    _slowwrite_tiny_notebook(tmp_path / "notebooks")
    first = _child(tmp_path, 1)
    _wait_for(first, "[run] 01_slow.ipynb ...")
    second = _child(tmp_path, 2)
    log = second.communicate(timeout=300)[0]
    assert first.wait(timeout=300) == 0 and second.returncode == 0, log
    assert "another build is running" in log
    assert _consistent(tmp_path / "_build") == 2


_CLI = """
import sys
from pathlib import Path
from helpers import paths
paths.NOTEBOOKS = Path(sys.argv[1])
from helpers.__main__ import main
sys.exit(main(sys.argv[2:]))
"""


def _cli(tmp_path, data):
    """``make run DATA=<data>`` on the tiny notebooks, as a child process."""
    script = tmp_path / "cli.py"
    script.write_text(_CLI)
    return subprocess.Popen([sys.executable, str(script), str(tmp_path / "notebooks"), "run", "--data", str(data),
                             "--build-dir", str(tmp_path / "_build")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_the_last_export_asked_for_is_the_one_published(tmp_path, clean_dir):
    """B is published; A starts; B is asked for again while A runs. Both commands succeed, and the book is B's:
    the second B is not told "current" while A may still publish (freshness is decided under the build lock)."""
    import shutil

    export_a, export_b = tmp_path / "A", tmp_path / "B"
    shutil.copytree(clean_dir, export_b)
    shutil.copytree(paths.SYNTHETIC, export_a)
    (tmp_path / "notebooks").mkdir()
    write_tiny_notebook(tmp_path / "notebooks" / "01_slow.ipynb", "import time\nfrom pathlib import Path\n"
                        "time.sleep(10)\nPath(output_dir, 'results', 'data.txt').write_text(data)")
    first_b = _cli(tmp_path, export_b)
    assert first_b.wait(timeout=300) == 0, first_b.stdout.read()
    build_a = _cli(tmp_path, export_a)
    _wait_for(build_a, "[run] 01_slow.ipynb ...")
    second_b = _cli(tmp_path, export_b)
    log = second_b.communicate(timeout=300)[0]
    assert build_a.wait(timeout=300) == 0 and second_b.returncode == 0, log
    assert "it is current" not in log and "another build is running" in log
    assert (tmp_path / "_build" / "results" / "data.txt").read_text() == str(export_b.resolve())


@pytest.mark.slow
@pytest.mark.parametrize("mode, phase", [("data-only", "[run] 01_slow.ipynb ..."),
                                         ("hang-in-book", "[book] jupyter-book build (")])
@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])
def test_a_killed_build_leaves_the_last_good_book_exactly_as_it_was(tmp_path, mode, phase, signal_name):
    import signal

    (tmp_path / "notebooks").mkdir()
    _slowwrite_tiny_notebook(tmp_path / "notebooks")
    assert _child(tmp_path, 1).wait(timeout=300) == 0
    before = _tree(tmp_path / "_build")
    victim = _child(tmp_path, 2, mode)
    _wait_for(victim, phase)
    victim.send_signal(getattr(signal, signal_name))
    victim.wait(timeout=60)
    assert _tree(tmp_path / "_build") == before
    staging = list(pipeline.trees_dir(tmp_path / "_build").glob("staging-*"))
    assert staging == [] if signal_name == "SIGTERM" else len(staging) == 1
    assert _child(tmp_path, 3).wait(timeout=300) == 0
    assert _consistent(tmp_path / "_build") == 3 and not list(pipeline.trees_dir(tmp_path / "_build").glob("staging-*"))


def test_two_runs_give_identical_executed_notebooks(dirs, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    write_tiny_notebook(dirs["notebook_dir"] / "01_ok.ipynb", "print(seed)")
    pipeline.run(seed=5, log=lambda *_: None, **dirs)
    first = _tree(dirs["build_dir"])
    pipeline.run(seed=5, log=lambda *_: None, force=True, **dirs)
    second = _tree(dirs["build_dir"])
    assert {p for p in first if first[p] != second[p]} <= {Path("results/provenance.json")}, "run times only"


@pytest.mark.slow
def test_two_whole_builds_are_byte_identical(tmp_path, monkeypatch):
    """Data, results, figures, executed notebooks and HTML: the same inputs give the same bytes (with the
    build date fixed by SOURCE_DATE_EPOCH; provenance.json also holds the notebooks' run times). The first build is
    ``python -m helpers build`` itself, whose log has no ERROR, Traceback or papermill parse warning."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    build = tmp_path / "_build"
    made = subprocess.run([sys.executable, "-m", "helpers", "build", "--build-dir", str(build)],
                          capture_output=True, text=True, timeout=900, cwd=paths.ROOT)
    assert made.returncode == 0, made.stderr
    alarming = [line for line in (made.stdout + made.stderr).splitlines()
                if re.search(r"ERROR|Traceback|Unable to parse", line)]
    assert not alarming, "a good build's log must not alarm its reader:\n" + "\n".join(alarming)
    first = _tree(build)
    pipeline.build(build_dir=build, log=lambda *_: None, force=True)
    second = _tree(build)
    assert first.keys() == second.keys()
    assert {p for p in first if first[p] != second[p]} <= {Path("results/provenance.json"),
                                                           Path("html/downloads/results/provenance.json")}
    assert {"html", "data", "results", "figures", "generated", "validation"} <= {p.parts[0] for p in first}
    assert "SYNTHETIC DATA" in (build / "html" / "book" / "intro.html").read_text()
    figures = [f for page in (build / "html" / "book" / "generated").glob("*.html")
               for f in re.findall(r"<figure.*?</figure>", page.read_text(), flags=re.S)]
    assert len(figures) >= 10 and all("<img" in f for f in figures), "every figure is drawn, not its text repr"
    assert (build / "html" / "book" / "generated" / "provenance.html").exists()


@pytest.mark.slow
def test_a_blinded_build_names_no_arm_anywhere(tmp_path):
    """BLINDED=1: every file of the published book (HTML, data, XPT, results, tables, figures, notebooks) and every
    file name is free of the trial file's arm labels and descriptions; the arms read Arm A and Arm B."""
    build = tmp_path / "_build"
    pipeline.build(build_dir=build, blinded=True, log=lambda *_: None)
    real = load_trial(paths.DEFAULT_TRIAL)
    names = [n.lower() for a in real.arms for n in (a.label, a.description)]
    root = build.resolve()
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) > 100
    for path in files:
        text = path.read_bytes().decode("latin-1").lower()
        assert not [n for n in names if n in text or n in str(path.relative_to(root)).lower()], path
    summary = (root / "html" / "book" / "generated" / "00_summary.html").read_text()
    assert "Arm A (N=" in summary and "Arm B (N=" in summary and "Blinded (arms masked as Arm A, Arm B)" in summary
    adsl = pd.read_csv(root / "data" / "adsl.csv")
    assert set(adsl["TRT01P"]) == {"Arm A", "Arm B"}


@pytest.mark.slow
def test_a_blinded_book_right_after_an_unblinded_one_reuses_nothing_of_it(tmp_path):
    """jupyter-book's incremental work folder of the unblinded build holds the arms' names (pages, search index):
    the blinded build gets its own, and is published; the unblinded one after it is rebuilt from its own."""
    trial_file = tmp_path / "demo.yaml"
    trial_file.write_text((paths.TRIALS / "DEMO-ORAL.yaml").read_text()
                          .replace("label: Placebo, description: matching placebo tablets", "label: Zorbex, description: matching tablets"))
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    for chapter in pipeline.notebooks():
        write_tiny_notebook(nbs / chapter.name, "print('two arms')", prose=f"# {chapter.stem}")
    build = tmp_path / "_build"
    pipeline.build(trial=str(trial_file), build_dir=build, notebook_dir=nbs, log=lambda *_: None)
    assert "zorbex" in (build / "html" / "searchindex.js").read_text().lower()
    pipeline.build(trial=str(trial_file), build_dir=build, notebook_dir=nbs, log=lambda *_: None, blinded=True)
    assert "zorbex" not in (build / "html" / "searchindex.js").read_text().lower()
    assert "Arm A" in (build / "html" / "book" / "intro.html").read_text()
    pipeline.build(trial=str(trial_file), build_dir=build, notebook_dir=nbs, log=lambda *_: None)
    assert "zorbex" in (build / "html" / "searchindex.js").read_text().lower()


@pytest.mark.slow
def test_demo_oral_blinded_run_keeps_its_placebo_controlled_design_text(tmp_path):
    """DEMO-ORAL's control arm is labelled Placebo and its design is "placebo-controlled": the blinded run is
    published with the design text as the trial file states it, and no arm named anywhere else."""
    build = tmp_path / "_build"
    pipeline.run(trial="DEMO-ORAL", blinded=True, build_dir=build, log=lambda *_: None)
    assert "placebo-controlled" in (build / "generated" / "trial.md").read_text().lower()
    assert "Arm A" in (build / "generated" / "trial.md").read_text()
