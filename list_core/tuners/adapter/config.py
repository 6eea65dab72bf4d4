"""The LiST bottleneck adapter's options (kind, bottleneck size, placement, init scale).

The bottleneck adapter is the seam's own tuner, so its code lives in `list_core.adapters`
(the backbone installs that module, which sits under every tuner); this package names it.
"""

from list_core.adapters import ADAPTER_KINDS, AdapterConfig

__all__ = ["ADAPTER_KINDS", "AdapterConfig"]
