"""The Word tables for the manuscript (helpers.report.word), read back with python-docx: every cell is the table
CSV's cell as the book prints it, key_results.csv's numbers are in them, journal style (caption above, three
horizontal rules, no vertical lines, notes below, N per arm in the header), the summary of findings, the same bytes
from the same tree; the blinding check reads inside the file; LibreOffice opens it; the downloads page lists it
with the PDF and the committee's pair.

Most tests build the DOCX from a small built tree (tables written by the book's own ``journal_table``); one slow
test builds a whole blinded book.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import docx
import nbformat
import pandas as pd
import pytest
import yaml
from docx.oxml.ns import qn

from helpers import bundle
from helpers.data.blinding import arm_mentions
from helpers.report.findings import PRIMARY_PREFIX
from helpers.report.tables import journal_table, save_tables_to
from helpers.report.word import GLUE, docx_name, write_docx

BUILD_DATE = "2025-03-04T05:06:07Z"
BANNER = "SYNTHETIC DATA (simulated, seed 1): not results of the trial · Final analysis · Unblinded (arms named)"
VERDICT = "The primary endpoint (overall survival to week 24) was not met: survival at day 168 was 90.0% versus 80.0%."
NUMBERS = {"tab-baseline": "3.1", "tab-key-results": "1", "tab-holm": "4.5", "tab-ae-summary": "6.1"}


def _headers(trial) -> dict[str, str]:
    return {a.label: f"{a.label} (N={n})" for a, n in zip(trial.arm_order, (12, 11, 10))}


def write_tree(tree: Path, trial, summary: str = VERDICT, banner: str = BANNER) -> Path:
    """A small built tree: the four tables the book writes (by ``journal_table``), key_results.csv, the provenance
    record, the build's configuration with its banner and the summary notebook's glued sentences."""
    h = _headers(trial)
    arms = list(h.values())
    control, experimental = trial.control.label, trial.experimental_arms[0].label
    save_tables_to(tree)
    try:
        journal_table(pd.DataFrame({"Characteristic": ["Age (years), mean (SD)", " median [Q1, Q3]", "Sex, n (%)",
                                                       " Female", " Male"]}
                                   | {a: ["54.9 (10.1)", "53.0 [48.8, 61.2]", "", f"{i + 3} (25.0%)", "9 (75.0%)"]
                                      for i, a in enumerate(arms)}),
                      "Baseline characteristics of the randomized population", "tab-baseline",
                      notes="Continuous: mean (SD) and median [Q1, Q3].\nCategorical: n (%).")
        journal_table(pd.DataFrame({"Finding": [f"{PRIMARY_PREFIX}survival at day 168, % (95% CI)",
                                                f"{PRIMARY_PREFIX}hazard ratio of death (Cox)",
                                                "Key secondary: Score (points), change to Week 24: difference",
                                                "Deaths, n (%)"]}
                                   | {h[control]: ["80.0 (51.4 to 93.4)", "", "", "2 (16.7%)"],
                                      h[experimental]: ["90.0 (57.3 to 96.6)", "", "", "1 (9.1%)"]}
                                   | {"Effect (95% CI)": ["", "0.63 (0.10 to 3.76)", "-1.02 (-2.43 to 0.38)", ""],
                                      "P": ["", "0.611", "0.146", ""]}),
                      "Key results", "tab-key-results", notes="Survival: Kaplan-Meier estimate.")
        journal_table(pd.DataFrame({"Endpoint": ["Score (points)", "Albumin (g/L)"], "Effect": ["difference"] * 2,
                                    "Estimate (95% CI)": ["-1.02 (-2.43 to 0.38)", "2.86 (1.12 to 4.60)"],
                                    "n": ["24", "24"], "P": ["0.146", "0.002"], "P (Holm)": ["1.000", "0.021"],
                                    "Covariance": ["us", "us"]}),
                      "MMRM effects at Week 24: unadjusted and Holm-adjusted p-values", "tab-holm",
                      notes="Holm step-down adjustment across all secondary endpoints at the visit.")
        journal_table(pd.DataFrame({"Participants with at least one": ["Any adverse event", "Death"],
                                    f"{h[control]}: participants, n (%)": ["10 (83.3%)", "2 (16.7%)"],
                                    f"{h[control]}: events": ["34", "2"],
                                    f"{h[experimental]}: participants, n (%)": ["11 (100.0%)", "1 (9.1%)"],
                                    f"{h[experimental]}: events": ["73", "1"]}),
                      "Adverse events by arm as treated: participants with at least one event, n (%), and events",
                      "tab-ae-summary", notes="Safety population (SAFFL = Y) by arm actually received.")
    finally:
        save_tables_to(None)
    (tree / "results").mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"ROLE": ["primary", "primary", "primary", "key secondary", "secondary", "safety", "safety"],
                  "ENDPOINT": ["OS", "OS", "OS", "SCORE", "ALB", "DEATH", "DEATH"],
                  "ARM": [control, experimental, experimental, experimental, experimental, control, experimental],
                  "TEXT": ["80.0 (51.4 to 93.4)", "90.0 (57.3 to 96.6)", "0.63 (0.10 to 3.76)", "-1.02 (-2.43 to 0.38)",
                           "2.86 (1.12 to 4.60)", "2 (16.7%)", "1 (9.1%)"]}
                 ).to_csv(tree / "results" / "key_results.csv", index=False)
    (tree / "results" / "provenance.json").write_text(json.dumps({"build_date": BUILD_DATE}), encoding="utf-8")
    (tree / "book_config.yml").write_text(yaml.safe_dump({"html": {"announcement": banner}}), encoding="utf-8")
    (tree / "generated").mkdir(exist_ok=True)
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("glue(...)")
    cell.outputs = [nbformat.v4.new_output("display_data", data={GLUE: repr(text)},
                                           metadata={"scrapbook": {"name": name, "mime_prefix": ""}})
                    for name, text in (("trial_what", f"{trial.id}: {trial.title}."), ("verdict", summary))]
    cell.outputs.append(nbformat.v4.new_output("display_data", data={GLUE: "<Figure size 640x480 with 1 Axes>"},
                                               metadata={"scrapbook": {"name": "figure", "mime_prefix": ""}}))
    nb.cells = [cell]
    nbformat.write(nb, tree / "generated" / "00_summary.ipynb")
    (tree / "html").mkdir(exist_ok=True)
    (tree / "html" / "table_numbers.json").write_text(json.dumps(NUMBERS), encoding="utf-8")
    return tree


@pytest.fixture()
def built(tmp_path, trial):
    """A small built tree with its downloads written as a build writes them (numbered tables, XLSX, RTF, DOCX)."""
    tree = write_tree(tmp_path / "tree", trial)
    bundle.write_downloads(tree, tree / "html", trial)
    return tree


def _docx(tree: Path, trial) -> Path:
    return tree / "html" / "downloads" / docx_name(trial)


def _csv(folder: Path, name: str) -> tuple[list[str], list[list[str]]]:
    with open(folder / f"{name}.csv", newline="", encoding="utf-8") as f:
        lines = list(csv.reader(f))
    return lines[0], lines[1:]


def _cells(row) -> list[str]:
    """A row's cells as Word shows them: a merged cell once."""
    seen, out = set(), []
    for cell in row.cells:
        if id(cell._tc) not in seen:
            seen.add(id(cell._tc))
            out.append(cell.text)
    return out


def read_back(path: Path) -> list[dict]:
    """Each table of the document: the caption before it, its rows and the note paragraphs after it."""
    d = docx.Document(path)
    items, tables = list(d.element.body.iterchildren()), iter(d.tables)
    paragraphs = {id(p._p): p.text for p in d.paragraphs}
    out = []
    for i, el in enumerate(items):
        if el.tag == qn("w:tbl"):
            t = next(tables)
            before = [paragraphs[id(e)] for e in items[:i] if e.tag == qn("w:p") and paragraphs.get(id(e))]
            after = []
            for e in items[i + 1:]:
                if e.tag != qn("w:p") or not paragraphs.get(id(e)):
                    break
                after.append(paragraphs[id(e)])
            out.append({"caption": before[-1], "rows": [_cells(r) for r in t.rows], "notes": after, "table": t})
    return out


def expected_tables(folder: Path, trial) -> list[tuple[str, list[str], list[list[str]]]]:
    """The four tables as the test reads them off the CSVs: caption, header, rows; the primary endpoint's rows of
    the key results; a column with one value in every row said in the caption instead (as the book shows it)."""
    out = []
    for name in ("tab-baseline", "tab-key-results", "tab-holm", "tab-ae-summary"):
        header, rows = _csv(folder, name)
        caption = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))["caption"]
        if name == "tab-key-results":
            rows = [r for r in rows if r[0].startswith(PRIMARY_PREFIX)]
            caption = "Primary endpoint: "
        keep = [j for j in range(len(header)) if j == 0 or len(rows) < 2 or len({r[j] for r in rows}) > 1]
        said = [f"{header[j]}: {rows[0][j]}" for j in range(len(header)) if j not in keep and rows[0][j]]
        out.append(("; ".join([caption] + said), [header[j] for j in keep], [[r[j] for j in keep] for r in rows]))
    return out


def assert_cells_are_the_csvs(path: Path, folder: Path, trial) -> list[dict]:
    """Every cell of each Word table is the CSV's cell; the arms' N line above a header that lacks them."""
    found = read_back(path)
    arms = [h for h in _csv(folder, "tab-key-results")[0] if "(N=" in h]
    assert len(found) == 4
    for k, (table, (caption, header, rows)) in enumerate(zip(found, expected_tables(folder, trial)), start=1):
        assert table["caption"].startswith(f"Table {k}. {caption}".rstrip()), table["caption"]
        head = table["rows"][:len(table["rows"]) - len(rows)]
        assert head[-1] == header
        if len(head) == 2:
            assert head[0] == ["; ".join(arms)] and not any("(N=" in h for h in header)
        else:
            assert len(head) == 1
        assert table["rows"][len(head):] == rows, caption
    return found


def test_every_cell_is_the_csvs_cell_as_printed(built, trial):
    found = assert_cells_are_the_csvs(_docx(built, trial), built / "html" / "downloads" / "tables", trial)
    assert found[0]["rows"][2][0] == " median [Q1, Q3]"
    assert "Covariance" not in found[2]["rows"][1] and found[2]["caption"].endswith("; Covariance: us")


def test_key_results_are_in_the_tables_of_their_role(built, trial):
    """Each number of key_results.csv is in its table: primary in Table 2, secondary in Table 3, safety in Table 4."""
    found = read_back(_docx(built, trial))
    table_of = {"primary": 1, "key secondary": 2, "secondary": 2, "safety": 3}
    key = pd.read_csv(built / "results" / "key_results.csv", dtype=str, keep_default_na=False)
    for r in key.itertuples():
        assert any(r.TEXT in row for row in found[table_of[r.ROLE]]["rows"]), (r.ROLE, r.TEXT)


def _edges(el, tag: str) -> dict[str, str]:
    borders = el.find(qn(tag))
    return {} if borders is None else {qn_child.tag.split("}")[1]: qn_child.get(qn("w:val")) for qn_child in borders}


def test_three_horizontal_rules_and_no_vertical_lines(built, trial):
    for table in read_back(_docx(built, trial)):
        t = table["table"]
        assert set(_edges(t._tbl.tblPr, "w:tblBorders").values()) == {"nil"}
        tops, bottoms = set(), set()
        for i, row in enumerate(t.rows):
            for cell in row.cells:
                edges = _edges(cell._tc.get_or_add_tcPr(), "w:tcBorders")
                assert edges.get("left") == edges.get("right") == "nil"
                assert not {"insideV", "insideH"} & set(edges)
                tops |= {i} if edges.get("top") == "single" else set()
                bottoms |= {i} if edges.get("bottom") == "single" else set()
        head = sum(1 for r in t.rows if r._tr.trPr.find(qn("w:tblHeader")) is not None)
        assert head in (1, 2)
        assert tops == {0} and bottoms == {head - 1, len(t.rows) - 1}, (tops, bottoms)


def test_captions_notes_and_n_per_arm(built, trial):
    found = read_back(_docx(built, trial))
    folder = built / "html" / "downloads" / "tables"
    for k, (table, name) in enumerate(zip(found, ("tab-baseline", "tab-key-results", "tab-holm", "tab-ae-summary")),
                                      start=1):
        meta = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
        assert table["caption"].startswith(f"Table {k}. ")
        assert table["notes"] == meta["notes"].splitlines() + [f"Table {NUMBERS[name]} of the book ({name}.csv in the "
                                                               "downloads)."]
        header_text = " ".join(c for row in table["rows"][:2] for c in row)
        assert all(f"{a.label} (N=" in header_text for a in trial.arm_order), name
    assert found[1]["caption"] == "Table 2. Primary endpoint: overall survival to week 24"


def test_summary_banner_page_and_fonts(built, trial):
    d = docx.Document(_docx(built, trial))
    texts = [p.text for p in d.paragraphs]
    assert "Summary of findings" in texts and VERDICT in texts and f"{trial.id}: {trial.title}." in texts
    assert d.sections[0].header.paragraphs[0].text == BANNER
    s = d.sections[0]
    assert (round(s.page_width.mm), round(s.page_height.mm)) == (210, 297)
    assert d.styles["Normal"].font.name == "Times New Roman"
    sizes = {r.font.size.pt for t in d.tables for row in t.rows for c in row.cells for p in c.paragraphs for r in p.runs}
    assert sizes == {9.0}


def test_a_wide_table_gets_a_landscape_section(tmp_path, trial):
    tree = write_tree(tmp_path / "tree", trial)
    save_tables_to(tree)
    try:
        journal_table(pd.DataFrame({"Participants with at least one": ["Any"]}
                                   | {f"Column {j} with a long header": ["100 (100.0%) [95.0 to 100.0]"] for j in range(8)}),
                      "Adverse events", "tab-ae-summary")
    finally:
        save_tables_to(None)
    d = docx.Document(write_docx(tree, trial, tmp_path / "w.docx"))
    assert [s.orientation for s in d.sections][-1] == docx.enum.section.WD_ORIENT.LANDSCAPE
    assert d.sections[-1].page_width > d.sections[-1].page_height
    assert d.sections[0].page_width < d.sections[0].page_height


def test_same_tree_same_bytes_and_the_build_date_in_the_properties(built, trial, tmp_path):
    """The zip members carry 1 January 1980 and the document's dates are the build's (provenance.json's
    build_date, SOURCE_DATE_EPOCH when set): the same tree gives the same bytes."""
    a = write_docx(built, trial, tmp_path / "a.docx")
    assert write_docx(built, trial, tmp_path / "b.docx").read_bytes() == a.read_bytes() == _docx(built, trial).read_bytes()
    with zipfile.ZipFile(a) as archive:
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    props = docx.Document(a).core_properties
    when = dt.datetime(2025, 3, 4, 5, 6, 7)
    assert props.created.replace(tzinfo=None) == props.modified.replace(tzinfo=None) == when
    assert props.author == "" and props.title == f"{trial.id}: tables for the manuscript"


def test_the_blinding_check_reads_inside_the_word_file(tmp_path, trial):
    """A blinded tree's DOCX (masked tables) names no arm; one sentence naming an arm inside it is found."""
    b = trial.blinded("key")
    tree = write_tree(tmp_path / "blind", b, summary="Arm A versus Arm B.", banner="Blinded (arms masked)")
    path = write_docx(tree, b)
    assert arm_mentions(tree, trial) == []
    assert "Arm A (N=" in " ".join(c for t in read_back(path) for row in t["rows"] for c in row)
    leak = write_tree(tmp_path / "leak", b, summary=f"Better with {trial.arms[0].label}.", banner="Blinded")
    leaked = write_docx(leak, b)
    shutil.rmtree(leak / "generated")
    assert arm_mentions(leak, trial) == [(leaked, trial.arms[0].label)]


def test_downloads_page_lists_the_docx_and_the_pdf_and_the_committee_pair_when_made(built, trial, tmp_path):
    dsmb = tmp_path / "_build-dsmb"
    page = bundle.downloads_markdown(built, [], trial, dsmb)
    assert f'<a href="../../downloads/{docx_name(trial)}">{docx_name(trial)}</a>' in page
    pdf = bundle.pdf_name(trial)
    assert pdf == f"{trial.id}-final.pdf" and "`make pdf`" in page and f'href="../../downloads/{pdf}"' not in page
    assert "`make dsmb`" in page and f"{trial.id}-final-open.pdf" in page
    (built / "html" / "downloads" / pdf).write_bytes(b"%PDF-1.7")
    dsmb.mkdir()
    for name in bundle.dsmb_names(trial):
        (dsmb / name).write_bytes(b"%PDF-1.7")
    page = bundle.downloads_markdown(built, [], trial, dsmb)
    assert f'<a href="../../downloads/{pdf}">{pdf}</a>' in page and "`make pdf`" not in page
    assert "`make dsmb`" not in page and f"`{trial.id}-final-closed.pdf` in `_build-dsmb/`" in page
    assert bundle.dsmb_names(trial.with_cutoff("2025-01-31"))[0] == f"{trial.id}-2025-01-31-open.pdf"


@pytest.mark.skipif(shutil.which("soffice") is None,
                    reason="LibreOffice (soffice) is not installed: apt-get install libreoffice-writer-nogui")
@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext is not installed: apt-get install poppler-utils")
def test_libreoffice_opens_it_and_prints_every_caption(built, trial, tmp_path):
    path = _docx(built, trial)
    subprocess.run(["soffice", "--headless", "--norestore", f"-env:UserInstallation={(tmp_path / 'lo').as_uri()}",
                    "--convert-to", "pdf", "--outdir", str(tmp_path), str(path)], check=True, capture_output=True,
                   timeout=180)
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / path.with_suffix(".pdf").name), "-"], check=True,
                          capture_output=True, text=True).stdout
    for table in read_back(path):
        assert table["caption"].split(":")[0] in text
    assert "Summary of findings" in text


@pytest.mark.slow
def test_a_blinded_book_publishes_word_tables_that_are_its_csvs(tmp_path, trial):
    """A whole blinded build: the DOCX is published with the downloads, its cells are the published CSVs, it names
    no arm (the build's blinding check read it), the page links it, and the same tree gives the same bytes."""
    from helpers import pipeline

    build_dir = tmp_path / "_build"
    pipeline.build(build_dir=build_dir, blinded=True, log=lambda *_: None)
    b = trial.blinded("key")
    path = build_dir / "html" / "downloads" / docx_name(trial)
    assert_cells_are_the_csvs(path, build_dir / "html" / "downloads" / "tables", b)
    assert arm_mentions(build_dir, trial) == []
    assert docx_name(trial) in (build_dir / "generated" / "downloads.md").read_text(encoding="utf-8")
    assert write_docx(build_dir, b, tmp_path / "again.docx").read_bytes() == path.read_bytes()


def test_the_downloads_page_links_the_pdf_the_build_prints(tmp_path, trial):
    """The PDF is printed after the page is made: a build that prints it links it already."""
    page = bundle.reports_markdown(tmp_path, trial, printed=True)
    assert f"/{bundle.pdf_name(trial)}\">" in page and "not made with this build" not in page
    assert "not made with this build" in bundle.reports_markdown(tmp_path, trial)
