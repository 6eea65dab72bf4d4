"""The `adapter` tuner (see docs/tuners.md)."""
