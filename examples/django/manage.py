#!/usr/bin/env python3
"""Django's command-line utility for the awa example project."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# Run from the awa repository: make clients/python/src importable (installed copies win).
sys.path.append(os.path.join(HERE, "..", "..", "clients", "python", "src"))

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shopsite.settings")
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)
