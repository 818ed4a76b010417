"""Analysis layer: pure functions from ADaM (and the validated export) to tidy results; no formatting, prose or plots."""
