"""The layer rule, read from the source: report -> analysis -> data, never back; figures and display only in report."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers import paths

PACKAGE = paths.ROOT / "src" / "helpers"
RANK = {"core": 0, "data": 1, "analysis": 2, "report": 3, "top": 4}
CORE = {"helpers", "helpers.trial", "helpers.paths", "helpers.cache", "helpers.scores"}  # helpers.scores: the registry and its plug-ins
DISPLAY = ("matplotlib", "seaborn", "IPython", "myst_nb")


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str:
    if module in CORE or module.startswith("helpers.scores."):
        return "core"
    part = module.split(".")[1]
    return part if part in ("data", "analysis", "report") else "top"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import; write helpers.<layer>.<module>"
            out += [f"{node.module}.{a.name}" if node.module == "helpers" else node.module for a in node.names]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return out


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_dependencies_point_one_way(path):
    me = _module(path)
    for imported in _imports(path):
        if not imported.startswith("helpers"):
            continue
        target = ".".join(imported.split(".")[:3]) if imported.count(".") >= 2 else imported
        target = target if target.split(".")[1] in ("data", "analysis", "report") else ".".join(imported.split(".")[:2])
        mine, theirs = _layer(me), _layer(target)
        allowed = theirs == "core" if mine == "core" else RANK[theirs] <= RANK[mine]
        assert allowed, f"{me} ({mine}) imports {imported} ({theirs}): dependencies point report -> analysis -> data"


@pytest.mark.parametrize("path", [p for p in MODULES if _layer(_module(p)) in ("core", "data", "analysis")],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_display_code_below_the_report_layer(path):
    shown = [m for m in _imports(path) if m.split(".")[0] in DISPLAY]
    assert not shown, f"{_module(path)} imports {shown}: figures and display belong to helpers.report"


def test_the_rule_catches_a_backward_import(tmp_path):
    bad = PACKAGE / "analysis" / "_probe_backward.py"
    bad.write_text("from helpers.report.tables import fixed\n")
    try:
        with pytest.raises(AssertionError, match="dependencies point"):
            test_dependencies_point_one_way(bad)
    finally:
        bad.unlink()


# ------------------------------------------------------------------ the trial file is read in one place

PLAN_SECTIONS = {"randomization", "primary_endpoint", "simulation", "baseline_covariates", "treatment", "eligibility",
                 "lab_panel", "endpoints", "visits", "arms"}
DICT_METHODS = {"get", "items", "keys", "values", "pop", "setdefault"}
NOTEBOOKS = sorted((paths.ROOT / "notebooks").glob("*.ipynb"))


def _dict_reads(tree: ast.AST) -> list[str]:
    """``<x>.<section>[...]`` or ``<x>.<section>.get(...)``: a trial section read as a raw mapping."""
    found = []
    for node in ast.walk(tree):
        inner = node.value if isinstance(node, (ast.Subscript, ast.Attribute)) else None
        if not (isinstance(inner, ast.Attribute) and inner.attr in PLAN_SECTIONS):
            continue
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
            found.append(f"line {node.lineno}: .{inner.attr}[{node.slice.value!r}]")
        elif isinstance(node, ast.Attribute) and node.attr in DICT_METHODS:
            found.append(f"line {node.lineno}: .{inner.attr}.{node.attr}(...)")
    return sorted(found)


def _notebook_code(path: Path) -> str:
    import nbformat
    cells = nbformat.read(path, as_version=4).cells
    return "\n".join(c.source for c in cells if c.cell_type == "code" and not c.source.lstrip().startswith("%"))


@pytest.mark.parametrize("path", [p for p in MODULES if p.name != "trial.py"] + NOTEBOOKS,
                         ids=lambda p: p.name if p.suffix == ".ipynb" else str(p.relative_to(PACKAGE)))
def test_trial_sections_are_read_through_the_typed_plan(path):
    code = _notebook_code(path) if path.suffix == ".ipynb" else path.read_text(encoding="utf-8")
    reads = _dict_reads(ast.parse(code))
    assert not reads, f"{path.name} reads the trial file as a dict ({'; '.join(reads)}): use the typed plan in trial.py"


def test_the_plan_rule_catches_a_dict_read():
    assert _dict_reads(ast.parse("seed = trial.randomization.get('seed')\nx = t.primary_endpoint['code']")) == [
        "line 1: .randomization.get(...)", "line 2: .primary_endpoint['code']"]
    assert _dict_reads(ast.parse("seed = trial.randomization.seed")) == []


def test_every_section_of_the_plan_is_typed():
    import dataclasses
    import typing

    from helpers.trial import Trial
    hints = typing.get_type_hints(Trial)
    raw = [f.name for f in dataclasses.fields(Trial) if typing.get_origin(hints[f.name]) is dict or hints[f.name] is dict]
    assert raw == ["masking_codes"], f"Trial fields held as raw dicts: {raw}"


# ------------------------------------------------------------------ each rule of the plan is written once

SOURCES = [p for p in MODULES if p.name != "trial.py"]


def _code(path: Path) -> str:
    return _notebook_code(path) if path.suffix == ".ipynb" else path.read_text(encoding="utf-8")


def _attribute_chain(node: ast.AST) -> str:
    """'trial.treatment.start' for the attribute node of that expression ('?' for what is not a name)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    parts.append(node.id if isinstance(node, ast.Name) else "?")
    return ".".join(reversed(parts))


def _rule_breaches(tree: ast.AST) -> list[str]:
    """Rules of the plan derived again outside trial.py: study day 1 (``fillna`` with RANDDT: ``Trial.day_one``),
    the dosing-file rule (a read of ``treatment.start``: ``Trial.has_dosing_file``/``doses_recorded``), window
    arithmetic or comparison (``Visit.holds``/``opens_on``/``closes_on``/``target_on``), the horizon's assessing
    day (``Trial.horizon_assessed_from``), and a default significance level (``alpha=...``: ``Trial.alpha``)."""
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "fillna"
                and "RANDDT" in ast.unparse(node)):
            found.append(f"line {node.lineno}: study day 1 derived again ({ast.unparse(node)}): use Trial.day_one")
        if isinstance(node, ast.Attribute) and node.attr == "start" and _attribute_chain(node).endswith("treatment.start"):
            found.append(f"line {node.lineno}: treatment.start read: use Trial.has_dosing_file or Trial.doses_recorded")
        if isinstance(node, (ast.Compare, ast.BinOp)) and any(
                isinstance(n, ast.Attribute) and n.attr == "window" for n in ast.walk(node)):
            found.append(f"line {node.lineno}: arithmetic on a visit window ({ast.unparse(node)}): use Visit.holds, "
                         "opens_on, closes_on or target_on")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "between"
                and any(isinstance(a, ast.Starred) and "window" in ast.unparse(a) for a in node.args)):
            found.append(f"line {node.lineno}: a window test ({ast.unparse(node)}): use Visit.holds")
        if isinstance(node, ast.FunctionDef) and node.name == "horizon_assessed_from":
            found.append(f"line {node.lineno}: horizon_assessed_from defined again: use Trial.horizon_assessed_from")
        if isinstance(node, ast.FunctionDef) and node.name not in CI_ALPHA:
            args = node.args.args + node.args.kwonlyargs
            defaults = dict(zip([a.arg for a in node.args.args][::-1], node.args.defaults[::-1]))
            defaults |= {a.arg: d for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults) if d is not None}
            if any(a.arg == "alpha" and a.arg in defaults for a in args):
                found.append(f"line {node.lineno}: {node.name}(alpha=...) has a default level: take Trial.alpha")
    return found


# Functions whose ``alpha`` is 1 - a confidence level of an interval, not the trial's significance level.
CI_ALPHA = {"loglog_ci", "kaplan_meier"}


@pytest.mark.parametrize("path", SOURCES + NOTEBOOKS,
                         ids=lambda p: p.name if p.suffix == ".ipynb" else str(p.relative_to(PACKAGE)))
def test_each_rule_of_the_plan_is_written_once(path):
    breaches = _rule_breaches(ast.parse(_code(path)))
    assert not breaches, f"{path.name}: " + "; ".join(breaches)


def test_the_rule_check_catches_each_rule_written_again():
    code = '''
ref = adsl["TRTSDT"].fillna(adsl["RANDDT"])
if trial.treatment.start == "randomization":
    pass
inside = ady.between(*v.window)
late = day > v.window[1]
end = ref + pd.Timedelta(days=v.window[1] - 1)
def horizon_assessed_from(trial):
    pass
def conclusion(p, alpha=0.05):
    pass
def holm(p, *, alpha=0.05):
    pass
def loglog_ci(s, alpha=0.05):
    pass
'''
    breaches = _rule_breaches(ast.parse(code))
    for line in (2, 3, 5, 6, 7, 8, 10, 12):
        assert any(b.startswith(f"line {line}:") for b in breaches), (line, breaches)
    assert not any(b.startswith("line 14:") for b in breaches), "a confidence interval's alpha is not the trial's"


def test_status_at_the_horizon_and_visit_status_are_each_one_rule_used_everywhere():
    """Fisher's test and the vital-status counts (of the table) use ``status_at_horizon``; the completeness tables, the intercurrent
    events and the sensitivity analyses use ``cohort.visit_status``; each is defined once."""
    defined: dict[str, list[str]] = {}
    calls: dict[str, set[str]] = {}
    for path in MODULES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
            defined.setdefault(fn.name, []).append(_module(path))
            calls[f"{_module(path)}.{fn.name}"] = {ast.unparse(c.func).split(".")[-1] for c in ast.walk(fn)
                                                   if isinstance(c, ast.Call)}
    assert defined["status_at_horizon"] == ["helpers.analysis.survival"]
    assert defined["visit_status"] == ["helpers.analysis.cohort"]
    assert "status_at_horizon" in calls["helpers.analysis.survival.fisher_survivors"]
    assert "status_at_horizon" in calls["helpers.analysis.survival.status_counts"]
    assert "status_counts" in calls["helpers.report.survival.vital_status_table"]
    for user in ("helpers.analysis.cohort.visit_completeness", "helpers.analysis.survival.intercurrent_events"):
        assert "visit_status" in calls[user], user
    assert any("visit_status" in c for name, c in calls.items() if name.startswith("helpers.analysis.sensitivity."))


# ------------------------------------------------------------------ chapters only show: no model is fitted there

FITTING = {
    "helpers.analysis.mmrm": {"fit_mmrm"},
    "helpers.analysis.outcomes": {"outcome_results", "ancova", "mmrm_table", "fit_endpoint_mmrm", "mmrm_differences"},
    "helpers.analysis.survival": {"survival_results", "cox_hr", "logrank", "fisher_survivors"},
    "helpers.analysis.imputation": {"mi_ancova", "pooled_ancova", "ancova_fit", "impute_changes", "impute_arm"},
    "helpers.analysis.tipping": {"tipping_grid", "tipping_point"},
    "helpers.analysis.worst_rank": {"worst_rank", "win_probability"},
    "helpers.analysis.sensitivity": {"sensitivity_analyses", "primary_mmrm"},
    "helpers.analysis.balance": {"baseline_balance"},
    "helpers.analysis.design": {"simulate_design", "design_results", "analyse_cohort"},
    "helpers.analysis.findings": {"key_mmrm", "key_results"},
}
FITTING_PACKAGES = ("statsmodels", "lifelines", "scipy.optimize")


def _fits(tree: ast.AST) -> list[str]:
    """Model-fitting functions a source imports or calls (``from m import f``, ``m.f`` for an imported module m),
    and model-fitting packages it imports."""
    modules, found = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for a in node.names:
                full = f"{node.module}.{a.name}"
                if full in FITTING:
                    modules[a.asname or a.name] = full
                elif a.name in FITTING.get(node.module, ()):
                    found.append(f"line {node.lineno}: imports {full}")
            if node.module.startswith(FITTING_PACKAGES):
                found.append(f"line {node.lineno}: imports {node.module}")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith(FITTING_PACKAGES):
                    found.append(f"line {node.lineno}: imports {a.name}")
                if a.name in FITTING and a.asname:
                    modules[a.asname] = a.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                and node.attr in FITTING[modules[node.value.id]]):
            found.append(f"line {node.lineno}: calls {modules[node.value.id]}.{node.attr}")
    return found


REPORT = sorted((PACKAGE / "report").rglob("*.py"))


@pytest.mark.parametrize("path", REPORT + NOTEBOOKS,
                         ids=lambda p: p.name if p.suffix == ".ipynb" else str(p.relative_to(PACKAGE)))
def test_chapters_and_the_report_layer_fit_no_model(path):
    """The analyses run once per build (``helpers.analysis.results``); the report layer and the chapters show them."""
    fits = _fits(ast.parse(_code(path)))
    assert not fits, f"{path.name} fits a model ({'; '.join(fits)}): read it from Cohort.results"


def test_the_fitting_rule_catches_a_model_fitted_in_a_chapter():
    code = ("from helpers.analysis import outcomes\nfrom helpers.analysis.survival import survival_results\n"
            "import statsmodels.formula.api as smf\nm = outcomes.mmrm_table(adlb, trial)\nx = outcomes.MODEL_COLUMNS\n")
    assert _fits(ast.parse(code)) == ["line 2: imports helpers.analysis.survival.survival_results",
                                      "line 3: imports statsmodels.formula.api",
                                      "line 4: calls helpers.analysis.outcomes.mmrm_table"]
