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
# consort figures
# randomization figures
# survival figures
# sensitivity figures
