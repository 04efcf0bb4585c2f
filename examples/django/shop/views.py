import json

from django.db import connection, transaction
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

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
