"""Blinded data review: the export with its arms masked (Arm A, Arm B, ...) and the check that no output names an arm.

The trial file's ``Trial.blinded`` gives the masked trial; the export is loaded and validated with the real one
(its arm codes are the site's), then masked here before anything is derived from it.
"""
from __future__ import annotations

import html
import re
import zipfile
from dataclasses import replace
from pathlib import Path

from helpers.data.loading import Export
from helpers.data.schema import export_spec
from helpers.trial import Trial

TEXT_SUFFIXES = {".html", ".md", ".csv", ".json", ".txt", ".ipynb", ".svg", ".yml", ".js", ".rtf"}
OFFICE_SUFFIXES = {".docx", ".xlsx"}
_OFFICE_BREAK = re.compile(r"</w:p>|</si>|</c>|</row>|</is>|<w:tab/>|<w:br/>|</dc:\w+>|</cp:\w+>")
_XML_TAG = re.compile(r"<[^>]+>")


def arm_columns(trial: Trial) -> dict[str, list[str]]:
    """The export's columns that hold an arm code, by file (from the data dictionary: ``allowed_from: arms``)."""
    return {name: [c.name for c in spec.columns if c.allowed_from == "arms"] for name, spec in export_spec(trial).items()}


def mask_export(export: Export, blinded: Trial) -> Export:
    """The export with every arm code replaced by its masked code."""
    codes = blinded.masking_codes
    tables = dict(export.tables)
    for name, columns in arm_columns(blinded.masked_from).items():
        if name in tables:
            tables[name] = tables[name].assign(**{c: tables[name][c].map(codes).fillna(tables[name][c])
                                                  for c in columns if c in tables[name]})
    return replace(export, tables=tables, trial=blinded)


def mask_effects(effects: list, blinded: Trial) -> list:
    """What the export mapping did, without the site's own spelling of each arm (a recode such as "肝动脉 -> HA" would
    name the arm behind a masked code)."""
    columns = {(name, c) for name, cs in arm_columns(blinded.masked_from).items() for c in cs}
    return [replace(e, detail="(the site's arm names are not shown in a blinded build)")
            if e.action == "recoded" and (e.file, e.target) in columns else e for e in effects]


def arm_names(trial: Trial) -> list[str]:
    """What names an arm in the trial file: each arm's label and description."""
    return sorted({text for a in trial.arms for text in (a.label, a.description)}, key=len, reverse=True)


def public_texts(trial: Trial) -> list[str]:
    """The trial file's own design description (title, short title, design, population, background): the same
    for both arms and public in the registry, so an arm's label inside one of them tells no arm from the other."""
    return sorted({t for t in (trial.title, trial.short_title, trial.design, trial.population, trial.background)
                   if t and t.strip()}, key=len, reverse=True)


def _public_pattern(trial: Trial) -> re.Pattern | None:
    """Any of ``public_texts`` verbatim, in any letter case and line wrapping."""
    texts = public_texts(trial)
    if not texts:
        return None
    return re.compile("|".join(r"\s+".join(map(re.escape, t.split())) for t in texts), re.IGNORECASE)


def mask_text(text: str, blinded: Trial) -> str:
    """``text`` with every arm label or description of the real trial replaced by the masked arm's label, except
    inside the trial file's public design description (masking a word there would say which arm it is)."""
    masked = {a.code: a.label for a in blinded.arms}
    codes = blinded.masking_codes
    public = _public_pattern(blinded.masked_from)
    parts = public.split(text) if public else [text]
    kept = public.findall(text) if public else []
    for a in sorted(blinded.masked_from.arms, key=lambda a: -len(a.description)):
        for name in (a.description, a.label):
            parts = [re.sub(re.escape(name), masked[codes[a.code]], part, flags=re.IGNORECASE) for part in parts]
    return "".join(part + (kept[i] if i < len(kept) else "") for i, part in enumerate(parts))


SEARCH_INDEX = "searchindex.js"


def office_text(path: Path) -> str:
    """The text of a Word or Excel file (a zip of XML parts): each part's text with its markup removed, a line
    break after each paragraph, cell and property, and runs within a paragraph joined as Word shows them."""
    with zipfile.ZipFile(path) as archive:
        parts = [archive.read(n).decode("utf-8", errors="replace") for n in sorted(archive.namelist())
                 if n.endswith((".xml", ".rels"))]
    return "\n".join(html.unescape(_XML_TAG.sub("", _OFFICE_BREAK.sub("\n", part))) for part in parts)


def arm_mentions(folder: Path, real: Trial) -> list[tuple[Path, str]]:
    """Text files, and the text inside Word and Excel files, under ``folder`` that name an arm of the real trial
    (label or description as whole words, any letter case) outside the trial file's public design description
    (``public_texts``), which is allowed verbatim. The HTML search index holds single words, not sentences: there
    a word of the public texts is allowed, since every page it indexes is checked here verbatim."""
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(n) for n in arm_names(real)) + r")(?!\w)", re.IGNORECASE)
    public = _public_pattern(real)
    public_words = {w.lower() for t in public_texts(real) for w in re.findall(r"\w+", t)}
    hits = []
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.suffix in TEXT_SUFFIXES | OFFICE_SUFFIXES:
            text = office_text(path) if path.suffix in OFFICE_SUFFIXES else path.read_text(encoding="utf-8",
                                                                                             errors="replace")
            if public:
                text = public.sub(" ", text)
            for found in pattern.finditer(text):
                if path.name == SEARCH_INDEX and found.group(0).lower() in public_words:
                    continue
                hits.append((path, found.group(0)))
                break
    return hits

