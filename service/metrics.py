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

# Jobs, recorded by the process that runs them (the API's own with the in-process runner; a
# Celery worker's jobs count in that worker process).
JOB_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600)
JOBS_FINISHED = Counter(
    "listserve_jobs_finished",
    "Job attempts run by this process, by outcome (succeeded, failed, cancelled, dropped, "
    "lease_lost, released)",
    ["outcome"],
)
JOB_SECONDS = Histogram(
    "listserve_job_seconds",
    "Wall time of one job attempt, claim to end, by outcome",
    ["outcome"],
    buckets=JOB_DURATION_BUCKETS,
)
TRAINING_SECONDS = Histogram(
    "listserve_training_seconds",
    "Wall time of training itself (list_core train_task) in jobs that trained to the end",
    buckets=JOB_DURATION_BUCKETS,
)
