"""Model wrappers (captioner, text embedder, verifier network); imported by stages and train only,
except `checkpoint.py` (what a verifier checkpoint folder holds, no torch), which config validation
also reads. `device.py` resolves the device and dtype for all of them."""
