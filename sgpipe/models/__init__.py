"""Model wrappers (captioner, text embedder, verifier network); imported by stages and train only."""
