"""In-process micro-benchmarks, each behind a default or a limit the service keeps: what one
forward, one load or one batch costs, without HTTP (`python -m benchmarks.micro.<name>`)."""
