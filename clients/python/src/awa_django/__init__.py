"""awa_django: an operator's dashboard for awa in Django's admin.

Add ``"awa_django"`` to ``INSTALLED_APPS`` (with django.contrib.admin); see docs/dashboard.md.
"""
