"""Pick the torch device from configuration, never hard-coding CUDA."""

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """Map `auto`, `cpu`, `cuda` or `cuda:N` to a device; `auto` prefers CUDA when present."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available on this machine")
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"unknown device {name!r}; use 'auto', 'cpu' or 'cuda'")
    return torch.device(name)
