"""Run an awa worker:

    awa-worker --dsn "dbname=app" --queue mail --module myapp.jobs
    awa-worker --dsn "dbname=app" --queue mail --queue sms --module myapp.jobs
    awa-worker --dsn "dbname=app" --all-queues --module myapp.jobs
    python -m awa_worker ...          (the same, without the installed script)

A worker of several queues (--queue repeated, or --all-queues for every queue)
claims the most urgent due jobs of any of them, each queue's pause and limit
holding (awa 0.3.0).

The modules are imported first; they register handlers with ``@awa.job("kind")``.
SIGTERM or SIGINT stops it cleanly: no new claims, running jobs finish (or are
released after --shutdown-timeout), their outcomes are recorded, exit status 0.

--metrics-port PORT serves Prometheus metrics at http://127.0.0.1:PORT/metrics
(needs python3-prometheus-client); --log-format json writes one JSON object per
line on stderr, one per job outcome (event job_completed, job_failed, ...).
"""

import argparse
import importlib
import logging
import os
import sys

import awa_client as awa
from awa_client.worker import JsonFormatter


def _prog() -> str:
    """The command's name in usage and errors: awa-worker, or python -m awa_worker."""
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "python -m awa_worker" if script in ("", "__main__.py", "-m", "-c") else script


def main(argv=None) -> int:
    """The awa-worker console script (and python -m awa_worker): parse argv, work, return 0."""
    p = argparse.ArgumentParser(prog=_prog(), description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dsn", default=os.environ.get("AWA_DSN", ""),
                   help="libpq connection string (default: $AWA_DSN, else the PG* environment)")
    p.add_argument("--queue", action="append", default=None, metavar="QUEUE",
                   help="queue to work; repeat it to work several (default: default)")
    p.add_argument("--all-queues", action="store_true",
                   help="work every queue (not with --queue)")
    p.add_argument("--module", action="append", default=[], required=True,
                   help="module that registers handlers (repeatable)")
    p.add_argument("--batch", type=int, default=10, help="jobs per claim (default 10)")
    p.add_argument("--concurrency", type=int, default=None,
                   help="handler threads (default: --batch)")
    p.add_argument("--wait", type=float, default=5, help="seconds a claim blocks (default 5)")
    p.add_argument("--lease", type=float, default=60,
                   help="lease in seconds, renewed by each heartbeat: a job outlives it while the worker"
                        " runs, and comes back this long after the worker died (default 60)")
    p.add_argument("--heartbeat", type=float, default=10,
                   help="heartbeat interval in seconds, shorter than the lease (default 10)")
    p.add_argument("--shutdown-timeout", type=float, default=30,
                   help="seconds to let running jobs finish on SIGTERM before releasing them (default 30)")
    p.add_argument("--name", default=None, help="worker name (default host:pid)")
    p.add_argument("--driver", choices=["psycopg", "psycopg2"], default=None)
    p.add_argument("--prepare-threshold", type=int, default=None, metavar="N",
                   help="let psycopg 3 prepare a statement on the server after N executions"
                        " (default: never, as a transaction pooler such as pgbouncer requires)")
    p.add_argument("--statement-retries", type=int, default=3, metavar="N",
                   help="retries of a complete/fail/snooze/heartbeat call that the server rejected"
                        " before giving up on that job (default 3; lost connections are retried"
                        " until the shutdown timeout)")
    p.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                   help="serve Prometheus metrics at http://ADDR:PORT/metrics (0: a free port;"
                        " needs python3-prometheus-client)")
    p.add_argument("--metrics-addr", default="127.0.0.1", metavar="ADDR",
                   help="address the metrics endpoint listens on (default 127.0.0.1; 0.0.0.0 or ::"
                        " for every interface)")
    p.add_argument("--log-format", choices=["text", "json"], default="text",
                   help="text (default), or json: one JSON object per line, one per job outcome"
                        " (ts, level, event, job_id, kind, queue, attempt, duration, outcome, error);"
                        " json logs at INFO, text at WARNING unless -v")
    p.add_argument("--once", action="store_true",
                   help="work until no job is due, then exit (no threads)")
    p.add_argument("-v", "--verbose", action="count", default=0)
    a = p.parse_args(argv)

    handler = logging.StreamHandler()
    if a.log_format == "json":
        handler.setFormatter(JsonFormatter())
        level = logging.INFO - 10 * min(a.verbose, 1)
        logging.captureWarnings(True)
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        level = logging.WARNING - 10 * min(a.verbose, 2)
    logging.basicConfig(level=level, handlers=[handler])
    sys.path.insert(0, os.getcwd())
    for m in a.module:
        importlib.import_module(m)
    if not awa.registry.handlers:
        p.error("the modules registered no handler (use @awa.job('kind'))")
    if a.all_queues and a.queue:
        p.error("--all-queues and --queue exclude each other")
    if a.all_queues:
        queue = awa.ALL_QUEUES
    elif not a.queue:
        queue = "default"
    else:
        queue = a.queue[0] if len(a.queue) == 1 else a.queue
    try:
        w = awa.Worker(a.dsn, queue=queue, driver=a.driver, batch=a.batch,
                       concurrency=a.concurrency, wait=a.wait, lease=a.lease,
                       heartbeat_interval=a.heartbeat, shutdown_timeout=a.shutdown_timeout,
                       name=a.name, prepare_threshold=a.prepare_threshold,
                       statement_retries=a.statement_retries, metrics_port=a.metrics_port,
                       metrics_addr=a.metrics_addr)
    except ImportError as exc:
        p.error(str(exc))
    if a.once:
        w.start_metrics()
        # run() logs worker_started itself; --once logs it here, as it logs worker_stopped below
        logging.getLogger("awa.worker").info(
            "worker %s: queue %s, batch %d, once", w.name, w.queue_label, w.batch,
            extra={"awa": {"event": "worker_started", "worker": w.name, "queue": w.queue,
                           "batch": w.batch, "concurrency": 1, "once": True}})
        try:
            while w.run_once():
                pass
        finally:
            w.stop_metrics()
    else:
        w.run()
    if a.log_format == "json":  # run() logged worker_stopped; --once did not
        if a.once:
            logging.getLogger("awa.worker").info(
                "worker %s stopped: %s", w.name, w.stats,
                extra={"awa": {"event": "worker_stopped", "worker": w.name, "queue": w.queue,
                               "stats": dict(w.stats)}})
    else:
        print("awa worker %s: %s" % (w.name, w.stats), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
