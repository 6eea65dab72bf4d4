"""Prometheus metrics of the API (the default registry, so the serving path's metrics, in
service/serving/metrics.py, appear on the same /metrics page)."""

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
JOBS_SUBMITTED = Counter("listserve_jobs_submitted", "Training jobs created through the API")
RATE_LIMITED = Counter(
    "listserve_rate_limited", "Predict requests refused by the tenant rate limit"
)
