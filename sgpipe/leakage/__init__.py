"""Leakage of evaluation images into a source dataset: `sgpipe leakage`.

`hashing.py` hashes image files (md5 of the bytes, imagehash's 64-bit DCT perceptual hash) in threads
with a bounded window; `against.py` indexes the evaluation sets (COCO-format JSON ids, image files);
`match.py` finds each source hash's nearest evaluation hash with numpy popcounts in blocks; `scan.py`
walks the source through the recipe's plan and writes the matches; `exclude.py` reads that file back
for `source.exclude`; `copies.py` makes the near-copies the threshold is measured on.
"""
