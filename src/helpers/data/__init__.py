"""Data layer: the export contract, loading and validation, simulation, ADaM derivations, scores, privacy."""
