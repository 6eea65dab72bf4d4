"""The `bitfit` tuner (see docs/tuners.md)."""
