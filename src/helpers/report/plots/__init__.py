"""Every figure of the book, one module per chapter; the pipeline saves each as PNG and SVG (``save_figure``)."""
from helpers.report.plots.cohort import plot_accrual, plot_visit_completeness  # noqa: F401
from helpers.report.plots.outcomes import plot_forest, plot_mean_ci, plot_spaghetti  # noqa: F401
from helpers.report.plots.style import (  # noqa: F401
    ARM_COLOURS,
    arm_palette,
    placeholder_figure,
    save_figure,
    set_style,
)
from helpers.report.plots.consort import plot_consort  # noqa: F401
from helpers.report.plots.randomization import plot_balance  # noqa: F401
from helpers.report.plots.survival import km_figure, plot_km  # noqa: F401
from helpers.report.plots.sensitivity import plot_sensitivity  # noqa: F401
from helpers.report.plots.design import plot_design_power  # noqa: F401
