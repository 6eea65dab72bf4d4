"""The `partial` tuner (see docs/tuners.md)."""
