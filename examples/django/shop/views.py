import json

from django.db import connection, transaction
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

import awa_client as awa

from .models import Order


@csrf_exempt        # a JSON API called by other programs, not a form (the admin keeps CSRF)
@require_POST
def create_order(request):
    """POST {"item": "book", "quantity": 2} -> 201 {"order_id": ..., "job_id": ...}."""
    data = json.loads(request.body or b"{}")
    try:
        with transaction.atomic():
            order = Order.objects.create(item=data["item"], quantity=int(data.get("quantity", 1)))
            with connection.cursor() as cursor:
                cursor.execute("SELECT id FROM awa_insert(%s, %s::jsonb, queue => %s)",
                               ["shop.confirm_order", json.dumps({"order_id": order.id}), "shop"])
                job_id = cursor.fetchone()[0]
            if order.quantity > 100:
                # Anything raised inside atomic() rolls back the order *and* the job.
                raise ValueError("at most 100 per order")
    except (KeyError, ValueError) as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({"order_id": order.id, "job_id": job_id}, status=201)


@csrf_exempt
@require_POST
def payment_webhook(request):
    """The payment provider's callback: POST {"callback_id": "...", "status": "paid" |
    "declined" | "retry", ...} resolves the parked shop.charge_order job (the body but the
    callback id kept on the job: its result, or callback_payload) -> 200 {"resolved": true}; 404 when no job waits for that callback
    (unknown, answered already, or timed out); 400 on a bad body.  The callback id is
    the capability: this view needs no other credential, and its database role only
    awa_producer."""
    try:
        data = json.loads(request.body or b"{}")
        callback_id, status = data["callback_id"], data["status"]
    except (KeyError, ValueError) as exc:
        return JsonResponse({"error": "bad request: %s" % exc}, status=400)
    payload = {k: v for k, v in data.items() if k != "callback_id"}
    client = awa.Client(connection)
    with transaction.atomic():
        if status == "paid":
            resolved = client.complete_external(callback_id, payload)
        elif status == "declined":
            resolved = client.fail_external(callback_id, "payment declined", payload)
        elif status == "retry":
            resolved = client.retry_external(callback_id, payload) is not None
        else:
            return JsonResponse({"error": "unknown status %r" % (status,)}, status=400)
    return JsonResponse({"resolved": resolved}, status=200 if resolved else 404)
