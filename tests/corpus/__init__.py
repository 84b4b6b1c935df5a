"""Generators of bad and unusual inputs, made in the test (nothing downloaded)."""
