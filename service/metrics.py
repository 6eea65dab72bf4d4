"""Prometheus metrics of the API (the default registry, so the adapter cache's and batcher's
metrics appear on the same /metrics page)."""

from prometheus_client import Counter, Histogram

HTTP_REQUESTS = Counter(
    "listserve_http_requests",
    "HTTP requests by route template and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "listserve_http_request_seconds",
    "HTTP request latency by route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
PREDICTIONS = Counter(
    "listserve_predictions",
    "Texts classified, by the task's head kind and method",
    ["head_kind", "method"],
)
JOBS_SUBMITTED = Counter("listserve_jobs_submitted", "Training jobs created through the API")
RATE_LIMITED = Counter(
    "listserve_rate_limited", "Predict requests refused by the tenant rate limit"
)
ADAPTER_LOAD_FAILURES = Counter(
    "listserve_adapter_load_failures",
    "Adapter loads refused, so never served: `integrity` (files missing or not matching their "
    "registered sha256) or `mismatch` (another backbone's adapter, or not an adapter)",
    ["reason"],
)
