"""A trial in another disease, by its trial file alone: DEMO-CKD (chronic kidney disease, an oral drug, kidney failure
or death as the primary endpoint, eGFR by CKD-EPI 2021) builds the whole book and no page names the liver; its variant
with a continuous primary endpoint (the change in eGFR to week 52) builds and states the verdict of the MMRM."""
from __future__ import annotations

import html
import re

import pandas as pd
import pytest

from helpers import pipeline
from test_design import ckd_continuous_file
from test_disease_words import disease_words

# The first trial's field: liver words, its scores and its treatment (a kidney trial may say transplant).
LIVER_WORDS = re.compile(r"\bliver|hepat|\bmeld|child[-_ ]?pugh|\bpugh|bilirubin|ascites|encephalopath|cirrho|\besld\b|"
                         r"hUC-MSC|\bTBIL\b|infusion|catheter", re.IGNORECASE)


def page_text(path) -> str:
    """What a reader sees of an HTML page: its text, without scripts, styles and tags."""
    raw = re.sub(r"<script.*?</script>|<style.*?</style>", " ", path.read_text(encoding="utf-8"), flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", raw)).split())


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    build = tmp_path_factory.mktemp("ckd") / "_build"
    pipeline.build(trial="DEMO-CKD", build_dir=build, log=lambda *_: None)
    return build


@pytest.mark.slow
def test_the_kidney_trial_book_names_no_liver_word(book):
    pages = sorted((book / "html").rglob("*.html"))
    assert len(pages) >= 15
    found = [f"{p.relative_to(book)}: {m.group(0)!r} in ...{text[max(0, m.start() - 60):m.end() + 40]}..."
             for p in pages for text in [page_text(p)] for m in LIVER_WORDS.finditer(text)]
    index = (book / "html" / "searchindex.js").read_text(encoding="utf-8")
    found += [f"searchindex.js: {m.group(0)!r}" for m in LIVER_WORDS.finditer(index)]
    assert not found, "\n".join(found[:20])


@pytest.mark.slow
def test_the_kidney_trial_shows_its_own_endpoints_score_and_glossary(book):
    summary = page_text(book / "html" / "book" / "generated" / "00_summary.html")
    assert "The primary endpoint (kidney failure or death to week 52)" in summary and "log-rank test" in summary
    adlb = pd.read_csv(book / "data" / "adlb.csv")
    assert {"EGFR", "CREAT", "UACR"} <= set(adlb["PARAMCD"])
    assert "GFR category (KDIGO)" in page_text(book / "html" / "book" / "generated" / "03_baseline.html")
    glossary = page_text(book / "html" / "book" / "glossary.html")
    assert "CKD-EPI 2021" in glossary and "Inker" in page_text(book / "html" / "book" / "references.html")


@pytest.mark.slow
def test_a_continuous_primary_endpoint_builds_and_its_summary_states_the_mmrm_verdict(tmp_path):
    build = tmp_path / "_build"
    pipeline.run(trial=str(ckd_continuous_file(tmp_path)), build_dir=build, log=lambda *_: None)
    summary = (build / "generated" / "00_summary.ipynb").read_text(encoding="utf-8")
    assert re.search(r"The primary endpoint \(change in eGFR from baseline to Week 52\) (was met|was not met) \(MMRM, "
                     r"two-sided level 0\.05\): Oral drug versus Placebo, difference", summary)
    key = pd.read_csv(build / "results" / "key_results.csv")
    assert (key.iloc[0]["ROLE"], key.iloc[0]["ENDPOINT"], key.iloc[0]["ANALYSIS"][:4]) == ("primary", "EGFR", "MMRM")
    assert not disease_words(summary.replace("kidney transplant", "")), "no liver word on the summary"


def test_the_scan_catches_a_liver_word():
    assert LIVER_WORDS.search("Child-Pugh class") and not LIVER_WORDS.search("kidney transplant; delivers")
    assert disease_words("hepatic") and not disease_words("delivery")
