"""A Sphinx extension for the book: journal tables that Sphinx numbers per chapter, like its figures.

A notebook cell's table reaches the page as a ``{journal-table}`` directive (see ``tables.journal_table``)
holding the table's HTML; Sphinx gives it a number and a label, so the prose cites it with
``{numref}`` and never types a table number.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util.docutils import SphinxDirective

from helpers.report.tables import CAPTION_SLOT

TABLE_NUMBERS = "table_numbers.json"


class journal_table(nodes.General, nodes.Element):
    """A table rendered elsewhere as HTML; Sphinx numbers it as a table."""


class JournalTableDirective(SphinxDirective):
    """``{journal-table} caption`` with ``:name:`` and the table's HTML as content."""

    required_arguments = 1
    final_argument_whitespace = True
    has_content = True
    option_spec = {"name": directives.unchanged}

    def run(self):
        node = journal_table(caption=self.arguments[0], html="\n".join(self.content))
        self.add_name(node)
        return [node]


def _caption(node) -> str:
    return node["caption"]


def visit_journal_table_html(self, node):
    key = f"{self.docnames[-1]}/table" if self.builder.name == "singlehtml" else "table"  # as Sphinx's add_fignumber
    number = self.builder.fignumbers.get(key, {}).get(node["ids"][0]) if node["ids"] else None
    label = self.config.numfig_format["table"] % ".".join(map(str, number)) if number else ""
    caption = (f'<span class="caption-number">{html.escape(label)} </span>' if label else "") + \
        f'<span class="caption-text">{html.escape(node["caption"])}</span>'
    anchor = f' id="{node["ids"][0]}"' if node["ids"] else ""
    self.body.append(f'<div class="journal-table"{anchor}>' + node["html"].replace(CAPTION_SLOT, caption) + "</div>\n")
    raise nodes.SkipNode


def skip(self, node):
    raise nodes.SkipNode


def _add_static(app):
    app.config.html_static_path.append(str(Path(__file__).parent / "static"))


def table_numbers(env) -> dict[str, str]:
    """Every journal table's number as Sphinx assigned it ('4.1'), by name, for the downloads (XLSX, RTF)."""
    return {name: ".".join(map(str, number)) for doc in env.toc_fignumbers.values()
            for name, number in doc.get("table", {}).items()}


def _write_table_numbers(app, exception):
    if exception is None and app.builder.format == "html":
        numbers = dict(sorted(table_numbers(app.env).items()))
        (Path(app.outdir) / TABLE_NUMBERS).write_text(json.dumps(numbers, indent=1), encoding="utf-8")


def setup(app):
    app.connect("build-finished", _write_table_numbers)
    app.connect("builder-inited", _add_static)
    app.add_css_file("journal.css")
    app.add_enumerable_node(journal_table, "table", _caption, html=(visit_journal_table_html, None),
                            latex=(skip, None), text=(skip, None), man=(skip, None), texinfo=(skip, None))
    app.add_directive("journal-table", JournalTableDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
