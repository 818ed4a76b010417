"""Report layer: tables shaped for display, prose and figures, from the analysis layer's tidy results."""
