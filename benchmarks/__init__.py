"""listserve benchmarks: accuracy (issue 3) and the fast-budget training-time check."""
