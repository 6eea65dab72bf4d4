"""A Houlsby adapter set is an `AdapterSet` of kind `houlsby` (its activation is a GELU)."""

from list_core.tuners.adapter.model import AdapterSet

__all__ = ["AdapterSet"]
