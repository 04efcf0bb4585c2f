"""``awa-worker`` / ``python -m awa_worker``: run an awa worker from the command line (see __main__)."""

from awa_client import Fail, JobCancelled, Snooze, Worker, job, registry

__all__ = ["Fail", "JobCancelled", "Snooze", "Worker", "job", "registry"]
