"""One task's bottleneck adapters, `AdapterSet` (in `list_core.adapters`, see config.py)."""

from list_core.adapters import AdapterSet

__all__ = ["AdapterSet"]
