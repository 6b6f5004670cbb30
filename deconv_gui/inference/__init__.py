"""The per-image pipeline: crop → batch → forward → paste back → aggregate, with cancellation and progress."""
