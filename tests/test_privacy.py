"""Direct identifiers never reach analysis data, notebook outputs or the book."""
from __future__ import annotations

import pandas as pd
import pytest

from helpers import paths, pipeline
from helpers.data.loading import read_raw
from helpers.data.privacy import digit_key, find_identifiers, identifier_values, identifies, name_key


@pytest.fixture(scope="module")
def values():
    return identifier_values({n: read_raw(paths.SYNTHETIC / f"{n}.csv") for n in ("screening", "randomization")})


def test_identifier_values_cover_names_phones_ids_birth_dates(values):
    screening = read_raw(paths.SYNTHETIC / "screening.csv")
    assert set(screening["name"].map(name_key)) <= set(values.names)
    assert set(screening["phone"].map(digit_key)) | set(screening["id_number"].map(digit_key)) <= set(values.numbers)
    assert set(screening["birth_date"]) <= set(values.dates)


def test_stored_notebook_outputs_hold_no_identifier(values):
    assert find_identifiers(paths.NOTEBOOKS, values) == []


def test_scan_finds_a_planted_identifier(values, tmp_path):
    name = sorted(values.names)[0]
    (tmp_path / "leak.csv").write_text(f"USUBJID,NAME\nX-1,{name}\n", encoding="utf-8")
    assert find_identifiers(tmp_path, values) == [(tmp_path / "leak.csv", "screening.name", name)]


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
        pipeline.run(build_dir=tmp_path / "_build", notebook_dir=nbs, log=lambda *_: None)
    assert not (tmp_path / "_build").exists()
    assert not list(pipeline.trees_dir(tmp_path / "_build").iterdir()), "refused outputs are deleted"



def _ids(**columns):
    return identifier_values({"screening": pd.DataFrame({k: pd.Series(v) for k, v in columns.items()})})


@pytest.mark.parametrize("text", ["died: ZHANG  Wei", "reason: zhang-wei moved away", "Zhāng Wèi", "zhangwei",
                                  "contact 138 1234 5678", "tel: +86 (138) 1234-5678", "ID 21010219800101123x"])
def test_scan_is_not_fooled_by_case_spaces_accents_or_separators(text):
    ids = _ids(name=["Zhang Wei"], phone=["13812345678"], id_number=["21010219800101123X"])
    assert ids.find(text), text


@pytest.mark.parametrize("text", ["Zhang found", "wei and zhang", "values 13 81 23", "12.5 130 145 16 14 12 10 8",
                                  "NA", "0", "-"])
def test_scan_does_not_match_what_is_not_the_identifier(text):
    ids = _ids(name=["Zhang Wei", "-", "NA"], phone=["13812345678", "0"], id_number=["21010219800101123X"])
    assert ids.find(text) == [], text


def test_values_too_short_or_common_to_identify_are_not_identifiers():
    assert not any(identifies(k) for k in ("", "-", "0", "na", "unknown", "li", "王", "123456"))
    assert all(identifies(k) for k in ("lina", "王伟", "1381234", "21010219800101123x"))


def test_chinese_names_are_found_in_text():
    ids = _ids(name=["王伟"])
    assert ids.find("死亡原因：王伟 肝衰竭") == [("screening.name", "王伟")]


def test_embedded_images_are_not_scanned():
    ids = _ids(phone=["13812345678"])
    assert ids.find('{"image/png": "iVBOR13812345678w0KGgo"}') == []


def test_scan_of_a_large_screening_log_is_fast():
    import time

    n = 100_000
    log = pd.DataFrame({"name": [f"Name{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}{chr(97 + i // 676 % 26)} Wei"
                                 for i in range(n)],
                        "phone": [f"13{i:09d}" for i in range(n)], "id_number": [f"2101021980{i:07d}X" for i in range(n)]})
    start = time.perf_counter()
    ids = identifier_values({"screening": log})
    hits = find_identifiers(paths.NOTEBOOKS, ids)
    assert hits == [] and len(ids.numbers) == 2 * n
    assert time.perf_counter() - start < 30, "a guard against a quadratic scan; the benchmark measures it"
