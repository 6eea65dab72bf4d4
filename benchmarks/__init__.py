"""listserve's benchmark commands (`python -m benchmarks.<name>`); benchmarks/README.md."""
