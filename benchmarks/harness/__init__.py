"""What the benchmark commands share: records, arguments, the few-shot protocol, the workloads,
the serving server, its load client and its samplers. A command module parses its arguments
and runs; everything it reuses lives here, so no command imports another."""
