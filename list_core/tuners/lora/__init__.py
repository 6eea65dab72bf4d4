"""The `lora` tuner (see docs/tuners.md)."""
