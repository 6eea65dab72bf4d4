"""The `side` tuner (see docs/tuners.md)."""
