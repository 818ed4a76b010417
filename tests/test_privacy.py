"""Direct identifiers never reach analysis data, notebook outputs or the book."""
from __future__ import annotations

import pytest

from helpers import paths, pipeline
from helpers.data.loading import read_raw
from helpers.data.privacy import find_identifiers, identifier_values


@pytest.fixture(scope="module")
def values():
    return identifier_values({n: read_raw(paths.SYNTHETIC / f"{n}.csv") for n in ("screening", "randomization")})


def test_identifier_values_cover_names_phones_ids_birth_dates(values):
    screening = read_raw(paths.SYNTHETIC / "screening.csv")
    for column in ("name", "phone", "id_number", "birth_date"):
        assert set(screening[column]) <= values


def test_stored_notebook_outputs_hold_no_identifier(values):
    assert find_identifiers(paths.NOTEBOOKS, values) == []


def test_scan_finds_a_planted_identifier(values, tmp_path):
    name = sorted(values)[0]
    (tmp_path / "leak.csv").write_text(f"USUBJID,NAME\nX-1,{name}\n", encoding="utf-8")
    assert find_identifiers(tmp_path, values) == [(tmp_path / "leak.csv", name)]


def test_run_refuses_to_publish_outputs_with_identifiers(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('data = "synthetic"\ntrial = "x"\nseed = None\noutput_dir = None'),
                nbformat.v4.new_code_cell("from helpers.data.simulation import simulate_export\nfrom helpers.trial import load_trial\n"
                                          "print(simulate_export(load_trial())['screening']['phone'].iloc[0])")]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, nbs / "01_leak.ipynb")
    with pytest.raises(pipeline.BuildError, match=r"direct identifiers found .*01_leak.ipynb"):
        pipeline.run(build_dir=tmp_path / "_build", notebook_dir=nbs, generated_dir=tmp_path / "generated",
                     log=lambda *_: None)
    assert not (tmp_path / "generated").exists()
