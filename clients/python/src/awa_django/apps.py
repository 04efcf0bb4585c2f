from django.apps import AppConfig


class AwaDjangoConfig(AppConfig):
    name = "awa_django"
    label = "awa_django"
    verbose_name = "awa job queue"
    default_auto_field = "django.db.models.BigAutoField"
