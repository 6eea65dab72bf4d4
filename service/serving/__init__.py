"""Serving predictions: `Predictor` (one request, end to end), the adapter cache, the dynamic
batcher and its model threads, and the benchmark-only baselines. No FastAPI here: failures are
`ServingError`s, which the predict route turns into HTTP answers."""
