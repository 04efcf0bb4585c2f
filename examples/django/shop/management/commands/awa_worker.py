"""python manage.py awa_worker --queue shop: run awa's worker with the <app>.jobs handlers."""
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connections
from django.utils.module_loading import autodiscover_modules

import awa_client as awa


class Command(BaseCommand):
    help = "Run an awa worker for one queue with the handlers of every app's jobs module."

    def add_arguments(self, parser):
        parser.add_argument("--queue", default="default")
        parser.add_argument("--batch", type=int, default=10)
        parser.add_argument("--concurrency", type=int, default=None)
        parser.add_argument("--wait", type=float, default=5)
        parser.add_argument("--once", action="store_true",
                            help="work until no job is due, then exit")

    def handle(self, *args, **opts):
        autodiscover_modules("jobs")            # imports shop/jobs.py: @awa.job(...) handlers
        db = connections["default"]
        params = db.get_connection_params()     # the same server and credentials as Django

        def connect():
            return db.Database.connect(**params)   # psycopg2 under Django 3.2

        def job_done(job):
            close_old_connections()              # handlers use the ORM in worker threads

        worker = awa.Worker(connect=connect, queue=opts["queue"], batch=opts["batch"],
                            concurrency=opts["concurrency"], wait=opts["wait"],
                            on_job_done=job_done)
        if opts["once"]:
            while worker.run_once():
                pass
        else:
            worker.run()
        self.stdout.write("awa worker %s: %s" % (worker.name, worker.stats))
