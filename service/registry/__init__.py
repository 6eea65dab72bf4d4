"""The SQL registry: the source of truth for tenants, keys, tasks, jobs and adapter versions.

Nothing in this package imports FastAPI, so the API, the in-process runner and the Celery worker
all share it.
"""
