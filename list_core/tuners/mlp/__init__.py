"""The `mlp` tuner (see docs/tuners.md)."""
