"""awa_client: a dependency-free Python client for the awa PostgreSQL job queue.

    import awa_client as awa
    client = awa.Client(conn)            # psycopg 3, psycopg2, or django.db.connection
    job = client.insert("send_email", {"to": "a@example.com"}, queue="mail")

    @awa.job("send_email")
    def send_email(job):
        ...                               # raise awa.Snooze(60) to run it again later

    awa.Worker("dbname=app", queue="mail").run()   # or: awa-worker ...
    awa.Worker("dbname=app", queue=["mail", "sms"]).run()   # several queues; awa.ALL_QUEUES: all
"""

from .client import ALL_QUEUES, Client, Job, QueueStats, connect, interval
from .worker import Fail, JobCancelled, Registry, Snooze, Worker, job, registry

# The package's one version: pyproject.toml reads it from here.
__version__ = "0.1.0"

__all__ = ["ALL_QUEUES", "Client", "Job", "QueueStats", "connect", "interval", "Worker", "Registry",
           "registry", "job", "Snooze", "Fail", "JobCancelled"]
