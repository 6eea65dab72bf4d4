"""The `prefix` tuner (see docs/tuners.md)."""
