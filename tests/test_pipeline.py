"""The pipeline: papermill run into staging, failures name the notebook and keep the last good outputs."""
from __future__ import annotations

import sys
import subprocess

import nbformat
import pandas as pd
import pytest

from helpers import paths, pipeline


def _notebook(path, source):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('data = "synthetic"\ntrial = "x"\nseed = None\noutput_dir = None'),
                nbformat.v4.new_code_cell(source)]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture()
def dirs(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    return {"build_dir": tmp_path / "_build", "notebook_dir": nbs, "generated_dir": tmp_path / "generated"}


def test_run_writes_adam_and_executed_notebooks(dirs):
    _notebook(dirs["notebook_dir"] / "01_ok.ipynb",
              "from pathlib import Path\nPath(output_dir, 'results', 'x.csv').write_text(str(seed))")
    pipeline.run(seed=7, log=lambda *_: None, **dirs)
    assert sorted(p.name for p in (dirs["build_dir"] / "data").iterdir()) == ["adlb.csv", "adsl.csv", "adtte.csv"]
    assert (dirs["build_dir"] / "results" / "x.csv").read_text() == "7"
    executed = nbformat.read(dirs["generated_dir"] / "01_ok.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "remove-cell" in injected[0].metadata["tags"]
    assert "papermill" not in executed.metadata
    assert {"trial.md", "data_dictionary.md"} <= {p.name for p in dirs["generated_dir"].iterdir()}
    assert not (dirs["build_dir"] / ".staging").exists()


def test_failing_notebook_names_itself_and_keeps_last_good_outputs(dirs):
    _notebook(dirs["notebook_dir"] / "01_ok.ipynb", "1 + 1")
    pipeline.run(log=lambda *_: None, **dirs)
    before = (dirs["build_dir"] / "data" / "adsl.csv").read_bytes()
    _notebook(dirs["notebook_dir"] / "02_bad.ipynb", "raise ValueError('bilirubin out of range')")
    with pytest.raises(pipeline.BuildError, match=r"02_bad.ipynb failed in cell \d+: ValueError: bilirubin out of range"):
        pipeline.run(seed=99, log=lambda *_: None, **dirs)
    assert (dirs["build_dir"] / "data" / "adsl.csv").read_bytes() == before
    assert sorted(p.name for p in dirs["generated_dir"].glob("*.ipynb")) == ["01_ok.ipynb"]


def test_invalid_export_stops_before_any_notebook(dirs, export_copy):
    labs = pd.read_csv(export_copy / "labs.csv", dtype=str)
    labs.loc[0, "alt"] = "high"
    labs.to_csv(export_copy / "labs.csv", index=False)
    _notebook(dirs["notebook_dir"] / "01_ok.ipynb", "1 + 1")
    with pytest.raises(Exception, match="labs.csv, row 2, column alt"):
        pipeline.run(data=str(export_copy), log=lambda *_: None, **dirs)
    assert not (dirs["generated_dir"]).exists()


def test_failed_html_build_keeps_last_good_html(tmp_path, monkeypatch):
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text("last good")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 1, "boom", ""))
    with pytest.raises(pipeline.BuildError, match="last good HTML is kept"):
        pipeline.build_html(build_dir=tmp_path, log=lambda *_: None)
    assert (html / "index.html").read_text() == "last good"


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
    pipeline.run(trial="NCT06242405", seed=3, build_dir=tmp_path / "_build", generated_dir=tmp_path / "generated",
                 log=lambda *_: None)
    executed = sorted(p.name for p in (tmp_path / "generated").glob("*.ipynb"))
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
    pipeline.run(trial="DEMO-ORAL", build_dir=build, generated_dir=tmp_path / "generated", log=lambda *_: None)
    assert sorted(p.name for p in (tmp_path / "generated").glob("*.ipynb")) == [p.name for p in pipeline.notebooks()]
    adlb = pd.read_csv(build / "data" / "adlb.csv")
    assert set(adlb["PARAMCD"]) == {"AST", "ALP", "TBIL", "ALB", "PT", "CREAT"}
    assert (adlb["LBSTAT"] == "NOT DONE").any()
    adsl = pd.read_csv(build / "data" / "adsl.csv")
    assert (adsl["DCUTDT"] == "2026-08-17").all() and (adsl["EOSSTT"] == "ONGOING").any()
    assert (adsl["TRTSDT"] == adsl["RANDDT"]).all()
    assert "Interim build" in (tmp_path / "generated" / "trial.md").read_text()
    assert "announcement" in (build / "book_config.yml").read_text()


@pytest.mark.slow
def test_interim_build_three_months_after_accrual_starts(tmp_path):
    """An early interim look at this trial: nobody has reached week 24; every chapter still runs, visits not
    yet due are not missed, and survival at the horizon counts only participants whose status there is known."""
    build = tmp_path / "_build"
    pipeline.run(cutoff="2025-10-01", build_dir=build, generated_dir=tmp_path / "generated", log=lambda *_: None)
    adsl = pd.read_csv(build / "data" / "adsl.csv")
    assert (pd.to_datetime(adsl["RANDDT"]) <= "2025-10-01").all() and len(adsl) < 32
    survival = pd.read_csv(build / "results" / "survival.csv")
    fisher = survival[survival["ANALYSIS"].str.startswith("Fisher")]
    assert (fisher["N"] == fisher["EVENTS"]).all(), "nobody can be known alive at day 168 after 3 months"
    km = survival[survival["ANALYSIS"].str.startswith("KM survival") & (survival["PARAMCD"] == "OS")]
    assert km["ESTIMATE"].isna().all(), "S(168) is not defined when nobody was followed that long"
    assert (tmp_path / "generated" / "validation.md").exists()


@pytest.mark.slow
def test_clean_export_gives_the_same_results_as_before(tmp_path, clean_dir):
    """Every result table on the clean synthetic export is byte-identical to the stored reference."""
    pipeline.run(data=str(clean_dir), build_dir=tmp_path / "_build", generated_dir=tmp_path / "generated",
                 log=lambda *_: None)
    reference = paths.ROOT / "tests" / "fixtures" / "clean_results"
    for expected in sorted(reference.glob("*.csv")):
        built = tmp_path / "_build" / "results" / expected.name
        assert built.read_bytes() == expected.read_bytes(), f"{expected.name} changed on the clean export"
