from django.contrib import admin
from django.urls import path

from shop import views

urlpatterns = [
    path("orders/", views.create_order, name="create-order"),
    path("webhooks/payment/", views.payment_webhook, name="payment-webhook"),
    path("admin/", admin.site.urls),      # awa's dashboard: /admin/awa_django/queue/
]
