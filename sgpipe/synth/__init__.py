"""The synthetic relational world: images, COCO annotations, captions and the true relations.

shapes (vocabulary, rasterising) -> layout (units placed on the canvas, draw order) -> render
(pixels, masks) -> geometry (relations from boxes, masks and draw order) -> captions (true and
false statements in varied English) -> world (files). evaluate scores scene-graph records against
the truth a world wrote.
"""
