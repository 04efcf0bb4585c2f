"""What the tests share: the database they run against, and the source tree they sit in.

Tests that need a server read a libpq connection string from AWA_TEST_DSN (a database
where awa is created; the tests empty awa.jobs and awa.queue_meta).  Without it they are
skipped, and the reason says so; test/integration/python_package.sh always sets it.
"""
import os
import sys
import unittest

DSN = os.environ.get("AWA_TEST_DSN", "")

# clients/python: pyproject.toml, src/, tests/
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS_DIR = os.path.join(PACKAGE_ROOT, "tests")

requires_database = unittest.skipUnless(
    DSN, "AWA_TEST_DSN is not set: give the connection string of a database with awa created")


def subprocess_env(*extra_dirs, **env):
    """os.environ plus env, with PYTHONPATH set so that a child python imports what we import
    (the packages under test, and this directory's handler modules such as awa_it_jobs)."""
    path = [d for d in extra_dirs] + [TESTS_DIR] + [p for p in sys.path if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path), **env)


def on_ring_engine(client):
    """True when the test database was created with the ring engine (awa.install_engine = ring:
    awa.jobs is a view of the ring, docs/storage.md "Step 5: how the switch lands"); the few
    answers that differ there are documented there (a job released or retried due at once is
    available at once, not scheduled or retryable until maintenance promotes it)."""
    return client.execute("SELECT relkind = 'v' FROM pg_class WHERE oid = 'awa.jobs'::regclass")[1][0][0]
