"""The `houlsby` tuner (see docs/tuners.md)."""
