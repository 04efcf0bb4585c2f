"""The example's tests: the snippets of clients/python/README.md against the real database."""
import json

from django.core.management import call_command
from django.db import connection, transaction
from django.test import TransactionTestCase

import awa_client as awa

from .models import Order


def job_row(job_id):
    with connection.cursor() as cursor:
        cursor.execute("SELECT kind, queue, args, state FROM awa.jobs WHERE id = %s", [job_id])
        row = cursor.fetchone()
    return None if row is None else (row[0], row[1], json.loads(row[2]) if isinstance(row[2], str) else row[2], row[3])


class EnqueueInTransactionTests(TransactionTestCase):
    """TransactionTestCase: each test really commits, as a request does."""

    def setUp(self):
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM awa.jobs")

    def test_view_commit_creates_order_and_job(self):
        r = self.client.post("/orders/", json.dumps({"item": "book", "quantity": 2}),
                             content_type="application/json")
        self.assertEqual(r.status_code, 201, r.content)
        body = r.json()
        self.assertTrue(Order.objects.filter(id=body["order_id"], status="new").exists())
        self.assertEqual(job_row(body["job_id"]),
                         ("shop.confirm_order", "shop", {"order_id": body["order_id"]}, "available"))

    def test_view_error_inside_atomic_rolls_back_both(self):
        r = self.client.post("/orders/", json.dumps({"item": "book", "quantity": 101}),
                             content_type="application/json")
        self.assertEqual(r.status_code, 400)
        self.assertEqual(Order.objects.count(), 0)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM awa.jobs")
            self.assertEqual(cursor.fetchone()[0], 0)

    def test_exception_inside_atomic_leaves_no_job(self):
        job_ids = []
        with self.assertRaises(RuntimeError):
            with transaction.atomic():
                order = Order.objects.create(item="pen")
                with connection.cursor() as cursor:
                    cursor.execute("SELECT id FROM awa_insert(%s, %s::jsonb)",
                                   ["shop.confirm_order", json.dumps({"order_id": order.id})])
                    job_ids.append(cursor.fetchone()[0])
                self.assertIsNotNone(job_row(job_ids[0]))   # visible inside the transaction
                raise RuntimeError("payment declined")
        self.assertIsNone(job_row(job_ids[0]))
        self.assertEqual(Order.objects.count(), 0)

    def test_job_exists_after_commit(self):
        with transaction.atomic():
            order = Order.objects.create(item="pen")
            with connection.cursor() as cursor:
                cursor.execute("SELECT id FROM awa_insert(%s, %s::jsonb)",
                               ["shop.confirm_order", json.dumps({"order_id": order.id})])
                job_id = cursor.fetchone()[0]
        # another connection (a worker) sees it once committed
        with awa.Client("host='%s' port='%s' user='%s' dbname='%s'" % (
                connection.settings_dict["HOST"], connection.settings_dict["PORT"],
                connection.settings_dict["USER"], connection.settings_dict["NAME"])) as other:
            (names, rows) = other.execute("SELECT state FROM awa.jobs WHERE id = %s", [job_id])
        self.assertEqual(rows, [("available",)])

    def test_client_on_django_connection_follows_atomic(self):
        client = awa.Client(connection)
        with self.assertRaises(RuntimeError):
            with transaction.atomic():
                job = client.insert("shop.confirm_order", {"order_id": 0}, queue="shop")
                raise RuntimeError("rolled back")
        self.assertIsNone(job_row(job.id))
        with transaction.atomic():
            job = client.insert("shop.confirm_order", {"order_id": 0}, queue="shop", tags=["django"])
        self.assertEqual(job_row(job.id)[3], "available")
        self.assertEqual(job.args, {"order_id": 0})
        self.assertEqual(job.tags, ["django"])

    def test_worker_command_confirms_the_order(self):
        r = self.client.post("/orders/", json.dumps({"item": "lamp"}), content_type="application/json")
        body = r.json()
        call_command("awa_worker", queue="shop", once=True, stdout=open("/dev/null", "w"))
        self.assertEqual(Order.objects.get(id=body["order_id"]).status, "confirmed")
        with connection.cursor() as cursor:
            cursor.execute("SELECT state, attempt, progress FROM awa.jobs WHERE id = %s", [body["job_id"]])
            state, attempt, progress = cursor.fetchone()
        self.assertEqual((state, attempt), ("completed", 1))
        self.assertEqual(json.loads(progress) if isinstance(progress, str) else progress, {"updated": 1})


class ExternalCompletionTests(TransactionTestCase):
    """A job parks waiting for the payment provider; the provider's webhook (a view)
    completes or fails it by its callback id."""

    def setUp(self):
        from . import jobs
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM awa.jobs")
        jobs.SENT_TO_PROVIDER.clear()
        self.sent = jobs.SENT_TO_PROVIDER

    def park(self):
        order = Order.objects.create(item="bike")
        job = awa.Client(connection).insert("shop.charge_order", {"order_id": order.id}, queue="shop")
        call_command("awa_worker", queue="shop", once=True, stdout=open("/dev/null", "w"))
        self.assertEqual(self.sent[-1][0], order.id)
        return job.id, self.sent[-1][1]

    def state(self, job_id):
        return awa.Client(connection).get_job(job_id)

    def test_webhook_completes_the_parked_job(self):
        job_id, callback_id = self.park()
        self.assertEqual(self.state(job_id).state, "waiting_external")
        body = {"callback_id": callback_id, "status": "paid", "amount": 120}
        r = self.client.post("/webhooks/payment/", json.dumps(body), content_type="application/json")
        self.assertEqual((r.status_code, r.json()), (200, {"resolved": True}))
        job = self.state(job_id)
        self.assertEqual((job.state, job.result), ("completed", {"status": "paid", "amount": 120}))
        # the provider calls again: nothing waits any more
        r = self.client.post("/webhooks/payment/", json.dumps(body), content_type="application/json")
        self.assertEqual((r.status_code, r.json()), (404, {"resolved": False}))

    def test_webhook_fails_the_parked_job(self):
        job_id, callback_id = self.park()
        body = {"callback_id": callback_id, "status": "declined", "reason": "card expired"}
        r = self.client.post("/webhooks/payment/", json.dumps(body), content_type="application/json")
        self.assertEqual(r.status_code, 200)
        job = self.state(job_id)
        self.assertEqual((job.state, job.last_error["error"], job.callback_payload),
                         ("failed", "payment declined", {"status": "declined", "reason": "card expired"}))

    def test_webhook_with_an_unknown_callback(self):
        r = self.client.post("/webhooks/payment/", json.dumps({"callback_id": "6f1c8f64-3a51-4f4e-9f27-0c1f5d2e8a11",
                                                               "status": "paid"}),
                             content_type="application/json")
        self.assertEqual(r.status_code, 404)
        r = self.client.post("/webhooks/payment/", json.dumps({"status": "paid"}), content_type="application/json")
        self.assertEqual(r.status_code, 400)
