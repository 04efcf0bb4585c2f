"""Handlers for the worker processes of test_client_it (python -m awa_worker --module awa_it_jobs)
and of test/integration/python/pgbouncer_check.py."""
import os
import threading
import time

import awa_client as awa

_log_lock = threading.Lock()
_log = None


def _record(job):
    """Append 'job_id attempt' to this process's log: the test counts executions from it."""
    global _log
    with _log_lock:
        if _log is None:
            path = os.path.join(os.environ["AWA_IT_LOG_DIR"], "worker-%d.log" % os.getpid())
            _log = open(path, "a", buffering=1)
        _log.write("%d %d\n" % (job.id, job.attempt))


@awa.job("it.noop")
def noop(job):
    _record(job)


@awa.job("it.hang_first")
def hang_first(job):
    """Hangs on its first attempt (the test SIGKILLs that worker); quick afterwards."""
    if job.attempt == 1:
        time.sleep(600)
    _record(job)


@awa.job("it.sleep")
def sleep(job):
    """Sleeps args.seconds; first writes 'job_id' to started-<pid>.log (the test waits for
    the handler to hold the job), then records the execution when done."""
    path = os.path.join(os.environ["AWA_IT_LOG_DIR"], "started-%d.log" % os.getpid())
    with open(path, "a") as f:
        f.write("%d\n" % job.id)
    time.sleep(float(job.args["seconds"]))
    _record(job)
