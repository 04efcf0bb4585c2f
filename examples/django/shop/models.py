from django.db import models


class Order(models.Model):
    item = models.CharField(max_length=100)
    quantity = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=20, default="new")   # new -> confirmed (by the job)
    created_at = models.DateTimeField(auto_now_add=True)
