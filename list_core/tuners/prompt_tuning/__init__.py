"""The `prompt_tuning` tuner (see docs/tuners.md)."""
