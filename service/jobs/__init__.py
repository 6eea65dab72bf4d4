"""Training jobs: the one job function every runner calls, and the runners themselves.

`execute_job(job_id, context)` is the whole lifecycle of one attempt. The in-process runner
(threads in the API process) and the Celery worker both call it, so a job behaves the same
whichever runs it.
"""
