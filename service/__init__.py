"""service: the multi-tenant HTTP API, registry, adapter store, batcher and adapter cache."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("listserve")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
