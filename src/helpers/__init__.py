"""Analysis helpers for the NCT06984497 analysis book (importable as ``helpers``)."""
