"""The `linear` tuner (see docs/tuners.md)."""
