"""Pure numpy building blocks: boxes, palettes, aggregation, metrics, synthetic scenes. No torch, no Qt."""
