"""The `p_tuning` tuner (see docs/tuners.md)."""
