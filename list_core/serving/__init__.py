"""The backbone's serving forward: the scripted (TorchScript) forward with per-row adapters,
and the int8/bf16/compiled serving twins it runs on (`list_core.serving.speedups`)."""
