"""Direct identifiers never reach analysis data, notebook outputs or the book."""
from __future__ import annotations

import pandas as pd
import pytest

from helpers import paths, pipeline
from helpers.data.loading import read_raw, validate_export
from helpers.data.privacy import (Identifiers, digit_key, find_identifiers, identifier_values, identifiers_in_text,
                                  identifies, name_key, scan_for_identifiers)
from helpers.data.schema import export_spec
from helpers.data.simulation import simulate_export, write_export


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
    name = sorted(set(values.names) - set(values.syllables))[0]
    (tmp_path / "leak.csv").write_text(f"USUBJID,NAME\nX-1,{name}\n", encoding="utf-8")
    assert find_identifiers(tmp_path, values) == [(tmp_path / "leak.csv", "screening.name", name)]


def test_a_file_found_clean_is_not_read_again_and_a_leak_always_is(values, tmp_path, monkeypatch):
    """The build keeps the digests of the files a scan found clean; the next scan of the same identifiers reads
    only files whose content changed, and finds a leak every time. The digest of the identifiers names none."""
    name = sorted(set(values.names) - set(values.syllables))[0]
    (tmp_path / "clean.csv").write_text("USUBJID,AVAL\nX-1,3.5\n", encoding="utf-8")
    (tmp_path / "leak.csv").write_text(f"USUBJID,NAME\nX-1,{name}\n", encoding="utf-8")
    hits, clean = scan_for_identifiers(tmp_path, values)
    assert hits == find_identifiers(tmp_path, values) and len(hits) == 1 and len(clean) == 1
    read = []
    real = Identifiers.find
    monkeypatch.setattr(Identifiers, "find", lambda self, text: read.append(text) or real(self, text))
    assert scan_for_identifiers(tmp_path, values, clean) == (hits, clean)
    assert read == [f"USUBJID,NAME\nX-1,{name}\n"]
    (tmp_path / "clean.csv").write_text("USUBJID,AVAL\nX-1,3.6\n", encoding="utf-8")
    assert scan_for_identifiers(tmp_path, values, clean)[0] == hits and len(read) == 3
    assert name not in values.digest() and values.digest() != Identifiers({}, {}, {}).digest()


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
    trees = pipeline.trees_dir(tmp_path / "_build")
    assert [p.name for p in trees.iterdir()] == [pipeline.CACHE], "refused outputs are deleted"
    kept = sorted(str(p.relative_to(trees / pipeline.CACHE).parent) for p in (trees / pipeline.CACHE).rglob("*")
                  if p.is_file())
    assert kept == ["privacy", "results"], "only the analyses and the digests of the clean files are kept"



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


# --- names in Chinese characters: spaced, and in pinyin ------------------------------------------------

@pytest.mark.parametrize("text", ["吴 金凤", "吴\u3000金凤", "吴·金凤", "吴 - 金凤", "吴_金凤", "吴.金凤", "吴\n金凤",
                                  "Wu Jinfeng", "Wú Jīnfèng", "wu2 jin1feng4", "Jinfeng Wu", "JINFENG WU", "wu-jinfeng",
                                  "WuJinfeng", "wujinfeng", "Wu Jin-feng", "Jīnfèng WÚ"])
def test_a_chinese_name_is_found_spaced_and_in_pinyin(text):
    assert [c for c, _ in _ids(name=["吴金凤"]).find(f"rash, grade 2 ({text}).")] == ["screening.name"], text


@pytest.mark.parametrize("name, text", [("曾国藩", "Zeng Guofan"), ("曾国藩", "Ceng Guofan"), ("单雄信", "Shan Xiongxin"),
                                        ("仇晓", "Qiu Xiao"), ("吕伟", "Lü Wei"), ("吕伟", "Lyu Wei"), ("吕伟", "LV WEI"),
                                        ("吕伟", "Wei Lu"), ("王伟", "WangWei"), ("欧阳娜娜", "Ouyang Nana"),
                                        ("欧阳娜娜", "Nana Ouyang")])
def test_pinyin_covers_every_reading_of_a_character_and_compound_surnames(name, text):
    assert _ids(name=[name]).find(text), (name, text)


@pytest.mark.parametrize("name, text", [("单浩", "Change from baseline"), ("柯利", "post-embolization-like pain"),
                                        ("阿琳", "see line 3"), ("冉浩", "normal range"), ("南明", "naming"),
                                        ("狄明", "timing"), ("哈浩", "get a"), ("门娜", "name n"), ("干丹", "and an"),
                                        ("王伟", "Wang, Li and Wei"), ("吴金凤", "Liver failure; hepatic encephalopathy")])
def test_pinyin_of_a_name_does_not_match_english_words(name, text):
    ids = _ids(name=[name])
    assert len(ids.names) > 1, "the name's pinyin spellings are looked for"
    assert ids.find(text) == [], (name, text)


def _put_in_ae_term(folder, name, term):
    scr = read_raw(folder / "screening.csv")
    scr.loc[0, "name"] = name
    scr.to_csv(folder / "screening.csv", index=False, lineterminator="\n")
    ev = read_raw(folder / "events.csv")
    i = ev.index[ev["event_type"] == "AE"][0]
    ev.loc[i, "term"] = term
    ev.to_csv(folder / "events.csv", index=False, lineterminator="\n")
    return i


@pytest.mark.parametrize("spelled", ["吴 金凤", "Wu Jinfeng"])
def test_a_chinese_name_spaced_or_in_pinyin_in_an_ae_term_is_an_error(export_copy, trial, spelled):
    i = _put_in_ae_term(export_copy, "吴金凤", f"rash ({spelled})")
    _, errors, _ = validate_export(export_copy, trial)
    assert {(p.file, p.row, p.column, p.rule) for p in errors} == {("events.csv", i + 2, "term", "identifier_in_text")}
    assert "screening.name" in errors[0].message and "Wu" not in errors[0].message and "吴" not in errors[0].message


@pytest.mark.parametrize("spelled, found", [("吴 金凤", "吴金凤"), ("Wu Jinfeng", "wu jinfeng"),
                                            ("JINFENG WU", "jinfeng wu")])
def test_the_output_scan_finds_a_chinese_name_spaced_or_in_pinyin(tmp_path, spelled, found):
    html = tmp_path / "06_safety.html"
    html.write_text(f"<table><tr><td>01-001</td><td>rash ({spelled})</td><td>mild</td></tr></table>", encoding="utf-8")
    assert find_identifiers(tmp_path, _ids(name=["吴金凤"])) == [(html, "screening.name", found)]


def test_no_name_faker_can_draw_is_found_in_the_synthetic_exports_free_text(trial, clean_dir, tmp_path):
    from faker.providers.person.zh_CN import Provider

    ids = identifier_values({"screening": pd.DataFrame({"name": [s + g for s in Provider.last_names
                                                                  for g in Provider.first_names]})})
    assert len(ids.syllables) > 50_000, "pinyin spellings of every name are looked for"
    free = {f: [c.name for c in s.columns if c.type == "string" and not c.identifier and c.name not in s.key]
            for f, s in export_spec(trial).items()}
    assert "term" in free["events"]
    write_export(simulate_export(trial), tmp_path)
    for folder in (tmp_path, paths.SYNTHETIC, clean_dir):
        tables, errors, _ = validate_export(folder, trial)
        assert identifier_values(tables).syllables, "the export's names are in Chinese characters"
        assert not [p for p in errors if p.rule == "identifier_in_text"], folder
        assert identifiers_in_text(tables, ids, free) == [], folder
