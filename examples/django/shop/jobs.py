"""Job handlers of the shop app (the awa_worker command imports <app>.jobs of every app)."""
import awa_client as awa

from .models import Order


@awa.job("shop.confirm_order")
def confirm_order(job):
    updated = Order.objects.filter(id=job.args["order_id"], status="new").update(status="confirmed")
    job.report_progress({"updated": updated})
