"""Job handlers of the shop app (the awa_worker command imports <app>.jobs of every app)."""
import awa_client as awa

from .models import Order


@awa.job("shop.confirm_order")
def confirm_order(job):
    updated = Order.objects.filter(id=job.args["order_id"], status="new").update(status="confirmed")
    job.report_progress({"updated": updated})


# What the payment provider was asked to do: (order id, callback id).  A real handler
# would POST the callback id to the provider with the payment request; the provider
# later calls the shop's webhook (views.payment_webhook) with it.
SENT_TO_PROVIDER = []


@awa.job("shop.charge_order")
def charge_order(job):
    """Ask the provider to charge the order, then wait up to an hour for its webhook:
    the job parks (waiting_external) and frees the worker."""
    callback_id = job.wait_external(3600)
    SENT_TO_PROVIDER.append((job.args["order_id"], callback_id))
