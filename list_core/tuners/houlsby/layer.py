"""Houlsby's per-row computation is the bottleneck's with a GELU (`f(h A) B`, f = GELU)."""

from list_core.tuners.adapter.layer import bottleneck_delta, gathered_delta

__all__ = ["bottleneck_delta", "gathered_delta"]
