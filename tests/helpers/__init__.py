"""Shared test helpers: tiny models built locally from configs (random weights, no download)."""
