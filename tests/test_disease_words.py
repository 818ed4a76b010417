"""The code knows no disease: disease words live in the trial files and in the one liver-scores plug-in only."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from helpers import paths

# Words that name the first trial's disease, its scores or its procedure (issue 17), in any case.
DISEASE_WORDS = re.compile(r"\bliver|hepat|\bmeld|child[-_ ]?pugh|\bpugh|bilirubin|transplant|\bLTX|infusion|catheter|"
                           r"ascites|encephalopath|cirrho|\besld\b", re.IGNORECASE)
PLUG_IN = paths.ROOT / "src" / "helpers" / "scores" / "liver.py"
# The one further exception, one word in one file: general laboratory vocabulary, used only to suggest mappings.
ALLOWED = {paths.ROOT / "src" / "helpers" / "data" / "lab_names.yaml": {"bilirubin"}}
SOURCES = sorted(p for p in (paths.ROOT / "src").rglob("*") if p.suffix in (".py", ".yaml", ".md", ".css", ".js")
                 and p != PLUG_IN and "static" not in p.parts)
NOTEBOOKS = sorted((paths.ROOT / "notebooks").glob("*.ipynb"))


def disease_words(text: str, allowed: set[str] = frozenset()) -> list[str]:
    """Each line that holds a disease word (other than ``allowed``, in lower case), as 'line N: <word> in <context>'."""
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        for m in DISEASE_WORDS.finditer(line):
            if m.group(0).lower() in allowed:
                continue
            out.append(f"line {n}: {m.group(0)!r} in {line.strip()[:100]!r}")
    return out


def _notebook_sources(path: Path) -> str:
    """The cells a person writes (markdown and code), not the stored outputs of the main trial's data."""
    return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)


@pytest.mark.parametrize("path", SOURCES + NOTEBOOKS, ids=lambda p: str(p.relative_to(paths.ROOT)))
def test_no_disease_words_outside_the_trial_files_and_the_liver_plug_in(path):
    text = _notebook_sources(path) if path.suffix == ".ipynb" else path.read_text(encoding="utf-8")
    found = disease_words(text, ALLOWED.get(path, set()))
    assert not found, f"{path.relative_to(paths.ROOT)} names a disease: " + "; ".join(found[:8])


def test_the_plug_in_exists_and_the_rule_catches_a_disease_word():
    assert PLUG_IN.exists(), "the liver scores live in one plug-in module"
    assert disease_words("x = scores.meld(tbil)\nchildren = []\nLiver Transplant")== [
        "line 1: 'meld' in 'x = scores.meld(tbil)'", "line 3: 'Liver' in 'Liver Transplant'",
        "line 3: 'Transplant' in 'Liver Transplant'"]
    assert disease_words("Total Bilirubin; liver", {"bilirubin"}) == ["line 1: 'liver' in 'Total Bilirubin; liver'"]
