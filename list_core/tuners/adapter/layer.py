"""The bottleneck's per-row computation, `f(h A) B` (in `list_core.adapters`, see config.py)."""

from list_core.adapters import bottleneck_delta, gathered_delta

__all__ = ["bottleneck_delta", "gathered_delta"]
