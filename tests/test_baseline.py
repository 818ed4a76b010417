"""Table 1: rows from the trial file, numbers checked against tableone, agreement with the flow and the raw files."""
import warnings

import numpy as np
import pytest

from helpers.analysis import baseline, consort
from helpers.pipeline import load_cohort
from helpers.report import baseline as baseline_report


@pytest.fixture(scope="module")
def adsl(adam):
    return adam["adsl"]


@pytest.fixture(scope="module")
def summary(adsl, trial):
    return baseline.baseline_summary(adsl, trial)


def value(summary, variable, level, group, statistic):
    s = summary.set_index(["variable", "level", "group", "statistic"])["value"]
    return s[(variable, level, group, statistic)]


def tableone_describe(adsl, variables, group):
    """tableone's continuous and categorical descriptions, by ``group`` (None: overall)."""
    from tableone import TableOne
    cont = [v["column"] for v in variables if v["type"] == "continuous"]
    cat = [v["column"] for v in variables if v["type"] == "categorical"]
    data = adsl.assign(**{c: adsl[c].astype("Float64").astype(float) for c in cont})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t1 = TableOne(data, columns=cont + cat, categorical=cat, groupby=group, nonnormal=cont, pval=False,
                      include_null=False)
    return t1.cont_describe, t1.cat_describe


def test_rows_follow_trial_file(trial, adsl):
    variables = baseline.baseline_variables(trial, adsl)
    codes = [v["code"] for v in variables]
    assert codes[:len(trial.baseline_covariates)] == [c.code for c in trial.baseline_covariates]
    assert codes[len(trial.baseline_covariates):] == ["ALT", "AST", "ALP", "TBIL", "ALB", "PT", "INR"]
    labels = {v["code"]: v["label"] for v in variables}
    assert labels["AGE"] == "Age (years)" and labels["TBIL"] == "Total bilirubin (umol/L)" and labels["SEX"] == "Sex"


@pytest.mark.parametrize("group", ["Peripheral vein", "Hepatic artery", "Overall"])
def test_numbers_match_tableone(trial, adsl, summary, group):
    variables = baseline.baseline_variables(trial, adsl)
    cont, cat = tableone_describe(adsl, variables, None if group == "Overall" else "TRT01P")
    pick = lambda frame, stat: frame[(stat, group)]  # noqa: E731
    for v in variables:
        if v["type"] == "continuous":
            for mine, theirs in (("n", "count"), ("mean", "mean"), ("sd", "std"), ("median", "median"),
                                 ("q1", "q25"), ("q3", "q75")):
                assert value(summary, v["label"], "", group, mine) == pytest.approx(
                    float(pick(cont, theirs)[v["column"]]), rel=1e-9), (v["code"], mine)
        else:
            for level in cat.loc[v["column"]].index:
                name = v["level_labels"].get(level, level)
                assert value(summary, v["label"], name, group, "n") == int(pick(cat, "freq")[(v["column"], level)])
                assert value(summary, v["label"], name, group, "pct") == pytest.approx(
                    float(pick(cat, "percent")[(v["column"], level)]), abs=0.051)


def test_missing_values_counted_and_percent_of_known(trial, adsl):
    holed = adsl.copy()
    holed.loc[holed.index[:3], "ASCITES"] = np.nan
    holed.loc[holed.index[:2], "ALTBL"] = np.nan
    s = baseline.baseline_summary(holed, trial)
    assert value(s, "Ascites", "", "Overall", "missing") == 3
    assert value(s, "Alanine aminotransferase (U/L)", "", "Overall", "missing") == 2
    assert value(s, "Alanine aminotransferase (U/L)", "", "Overall", "n") == len(adsl) - 2
    known = holed["ASCITES"].dropna()
    assert value(s, "Ascites", "mild", "Overall", "pct") == pytest.approx(100 * (known == "mild").mean())
    table = baseline_report.table_one(s, holed, trial)
    assert (table["Characteristic"] == "\u2003missing, n").sum() == 2
    _, cat = tableone_describe(holed, [v for v in baseline.baseline_variables(trial, holed) if v["code"] == "ASCITES"],
                               None)
    assert float(cat[("percent", "Overall")][("ASCITES", "mild")]) == pytest.approx(100 * (known == "mild").mean(), abs=0.051)


def test_tidy_columns_and_n_per_arm_agree_with_flow(trial, adsl, summary, export):
    assert list(summary.columns) == ["variable", "level", "group", "statistic", "value"]
    flow = consort.consort_flow(export, trial, adsl).set_index("box")["n"]
    for arm in trial.arms:
        assert value(summary, "N", "", arm.label, "n") == flow[f"analysed:{arm.code}"] == flow[f"allocated:{arm.code}"]
    assert value(summary, "N", "", "Overall", "n") == flow["randomized"]


def test_hand_counts_from_raw_screening(summary, export):
    sc = export["screening"][export["screening"]["screening_id"].isin(export["randomization"]["screening_id"])]
    assert value(summary, "Sex", "Female", "Overall", "n") == int((sc["sex"] == "F").sum())
    assert value(summary, "Age (years)", "", "Overall", "mean") == pytest.approx(sc["age"].astype(float).mean())
    assert value(summary, "Etiology", "HBV", "Overall", "n") == int((sc["etiology"] == "HBV").sum())


def test_display_table(trial, adsl, summary):
    table = baseline_report.table_one(summary, adsl, trial)
    n = adsl["ARMCD"].value_counts()
    assert list(table.columns) == ["Characteristic", f"Peripheral vein (N={n['PV']})", f"Hepatic artery (N={n['HA']})",
                                   f"Overall (N={len(adsl)})"]
    row = table.set_index("Characteristic").loc["Age (years), mean (SD)"]
    mean, sd = adsl["AGE"].astype(float).mean(), adsl["AGE"].astype(float).std()
    assert row.iloc[-1] == f"{mean:.1f} ({sd:.1f})"
    assert "\u2003Female" in set(table["Characteristic"]) and "Sex, n (%)" in set(table["Characteristic"])


def test_sister_trial_without_code_change():
    c = load_cohort("synthetic", "NCT06242405", 7)
    s = baseline.baseline_summary(c.adsl, c.trial)
    table = baseline_report.table_one(s, c.adsl, c.trial)
    assert table.columns[1].startswith("Single") or "N=" in table.columns[1]
    assert value(s, "N", "", "Overall", "n") == 92
    assert "Age (years), mean (SD)" in set(table["Characteristic"])


def test_decimals_follow_the_recorded_data(trial, adsl, summary):
    table = baseline_report.table_one(summary, adsl, trial).set_index("Characteristic")
    age = adsl["AGE"].astype(float)
    assert table.at["Age (years), mean (SD)", table.columns[-1]] == f"{age.mean():.1f} ({age.std():.1f})"
    inr = adsl["INRBL"].astype(float).dropna()
    decimals = next((d + 1 for d in range(3) if np.allclose(inr, np.round(inr, d))), 3)  # one more than recorded
    assert table.at["International normalized ratio, mean (SD)", table.columns[-1]] == \
        f"{inr.mean():.{decimals}f} ({inr.std():.{decimals}f})"


def test_chapter_numbers(trial, adsl):
    numbers = baseline_report.chapter_numbers(adsl, trial)
    n = adsl["ARMCD"].value_counts()
    assert numbers == {"n_itt": len(adsl),
                       "n_per_arm": ", ".join(f"{n[a.code]} {a.label}" for a in trial.arms)}


def test_categorical_levels_come_from_the_trial_file_the_schema_or_the_registry(trial, adsl):
    """Stated levels in their order; else the schema's allowed values ("present, grade unknown" only when recorded);
    a class of a derived parameter: the registry's levels, even those nobody is in."""
    import dataclasses

    from helpers.trial import Covariate
    covs = (Covariate("ASCITES", "Ascites", "categorical", source="clinical.ascites"),
            Covariate("HEPENC", "Encephalopathy", "categorical", source="clinical.encephalopathy",
                      levels=("grade 3-4", "grade 1-2", "none")),
            Covariate("CPCLASS", "Class", "categorical", source="class.CPSCORE"))
    t = dataclasses.replace(trial, baseline_covariates=covs)
    levels = {v["code"]: v["levels"] for v in baseline.baseline_variables(t, adsl)}
    assert levels["ASCITES"] == ["none", "mild", "moderate-severe"]
    assert levels["HEPENC"] == ["grade 3-4", "grade 1-2", "none"]
    assert levels["CPCLASS"] == ["A", "B", "C"]
    unknown = adsl.assign(ASCITES=adsl["ASCITES"].mask(adsl.index == 0, "present, grade unknown"))
    levels = {v["code"]: v["levels"] for v in baseline.baseline_variables(t, unknown)}
    assert levels["ASCITES"] == ["none", "mild", "moderate-severe", "present, grade unknown"]
