"""Report tables and figures: deterministic HTML with caption; figures plot the numbers they claim."""
from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.analysis import cohort
from helpers.report import cohort as cohort_report
from helpers.report import plots
from helpers.report.tables import journal_table


def test_journal_table_has_caption_note_and_no_volatile_ids():
    df = pd.DataFrame({"Arm": ["A", "B"], "n": [3, 4]})
    out = journal_table(df, "Counts", "tab-counts", notes="n: participants").data
    assert '<table class="journal">\n<caption>Counts</caption>' in out
    assert "n: participants" in out and '<tr><td>A</td><td class="r">3</td></tr>' in out
    assert out == journal_table(df, "Counts", "tab-counts", notes="n: participants").data
    assert "T_" not in out and "uuid" not in out


def test_journal_table_is_a_numbered_directive_for_the_book():
    md = journal_table(pd.DataFrame({"Arm": ["A", "B"], "n": [3, 4]}), "Counts by arm", "tab-counts")._repr_markdown_()
    assert md.startswith("````{journal-table} Counts by arm\n:name: tab-counts\n\n")
    assert "<caption>@@CAPTION@@</caption>" in md and md.endswith("````\n")


def test_journal_table_moves_a_constant_column_to_the_caption_and_says_when_empty():
    df = pd.DataFrame({"Endpoint": ["ALT", "AST"], "Visit": ["Week 24", "Week 24"], "n": [3, 4]})
    t = journal_table(df, "Effects", "tab-effects")
    assert t.caption == "Effects; Visit: Week 24" and "<th>Visit</th>" not in t.data
    empty = journal_table(df.iloc[:0], "Effects", "tab-effects", empty="No effects.")
    assert '<td colspan="3">No effects.</td>' in empty.data


def test_journal_table_saves_its_csv_and_links_it(tmp_path):
    from helpers.report.tables import save_tables_to

    df = pd.DataFrame({"Arm": ["A", "B"], "n": [3, 4]})
    save_tables_to(tmp_path)
    try:
        out = journal_table(df, "Counts", "tab-counts", notes="n: participants").data
    finally:
        save_tables_to(None)
    assert pd.read_csv(tmp_path / "tables" / "tab-counts.csv").equals(df)
    assert '"caption": "Counts"' in (tmp_path / "tables" / "tab-counts.json").read_text()
    assert 'href="../../downloads/tables/tab-counts.csv"' in out
    assert "href" not in journal_table(df, "Counts", "tab-counts").data


def test_journal_table_aligns_text_left_numbers_right_and_escapes():
    df = pd.DataFrame({"Variable": ["Age <18", "Age"], "Group": ["Peripheral vein", "x"], "n (%)": ["13 (81.2%)", ""],
                       "p": [0.5, 0.25], "Missing": [None, None]})
    out = journal_table(df, "T", "tab-t").data
    assert ('<tr><td>Age &lt;18</td><td>Peripheral vein</td><td class="r">13 (81.2%)</td>'
            '<td class="r">0.5</td></tr>') in out
    assert "Missing" not in out


def test_fixed_rounds_halves_away_from_zero_like_sas():
    from helpers.report.tables import fixed, n_pct

    assert [fixed(6.25, 1), fixed(0.125, 2), fixed(-2.5, 0), fixed(100 / 3, 1), fixed(2.675, 2)] == \
           ["6.3", "0.13", "-3", "33.3", "2.68"]
    assert n_pct(1, 16) == "1 (6.3%)" and n_pct(0, 0) == "0"


def test_blank_repeats_groups_leading_labels():
    from helpers.report.tables import blank_repeats

    df = pd.DataFrame({"Endpoint": ["ALT", "ALT", "ALT", "AST"], "Visit": ["W4", "W4", "W12", "W12"], "n": [1, 2, 3, 4]})
    out = blank_repeats(df, 2)
    assert out["Endpoint"].tolist() == ["ALT", "", "", "AST"]
    assert out["Visit"].tolist() == ["W4", "", "W12", "W12"]
    assert out["n"].tolist() == [1, 2, 3, 4]


def test_accrual_figure_plots_the_accrual_table(adam, trial):
    adsl = adam["adsl"]
    accrual = cohort.accrual_by_month(adsl, trial)
    assert accrual.groupby("Arm")["Randomized"].sum().to_dict() == adsl["TRT01P"].value_counts().to_dict()
    fig = plots.plot_accrual(accrual, trial, cohort_report.arm_header(adsl, trial))
    ax = fig.axes[0]
    steps = [line for line in ax.get_lines() if line.get_drawstyle().startswith("steps")]
    for line, arm in zip(steps, [a.label for a in trial.arms]):
        assert np.array_equal(line.get_ydata(), accrual.loc[accrual["Arm"] == arm, "Cumulative"].to_numpy())
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"{a.label} (N=16)" for a in trial.arms]


def test_visit_completeness_adds_up_and_figure_matches(adam, trial):
    table = cohort.visit_completeness(adam["adsl"], adam["adlb"], trial)
    assert (table["Expected"] + table["Ended before visit"] == table["Randomized"]).all()
    assert (table["Attended"] + table["Missed"] == table["Expected"]).all()
    base = table[table["Visit"] == trial.baseline_visit.label]
    assert (base["Attended"] == base["Randomized"]).all()
    fig = plots.plot_visit_completeness(table, trial, cohort_report.arm_header(adam["adsl"], trial))
    heights = sorted(p.get_height() for p in fig.axes[0].patches)
    assert heights == sorted(table["Expected"].tolist() + table["Attended"].tolist())


def test_disposition_counts_every_participant(adam, trial):
    table = cohort_report.disposition(cohort.disposition_counts(adam["adsl"], trial), adam["adsl"], trial)
    total = table.iloc[:, -1].str.split(" ").str[0].astype(int).sum()
    assert total == len(adam["adsl"])
