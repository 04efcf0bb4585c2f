#!/usr/bin/env bash
# The operator's dashboard (awa_django) on the ring engine: test/integration/django_admin.sh with
# AWA_TEST_ENGINE=ring, so that the project's database and Django's test database are created with
# awa.install_engine = ring (awa.jobs is a view of the ring: docs/storage.md, "Step 5: how the
# switch lands").  Every test of awa_admin_tests and awa_history_tests runs, the browser's too; the
# script fails unless both databases keep their jobs in the ring (awa.jobs of relkind 'v').
# Needs PGHOST/PGPORT/PGUSER of a running server with awa preloaded, as exported by
# scripts/test.sh.  Exits non-zero on failure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
AWA_TEST_ENGINE=ring exec bash "$ROOT/test/integration/django_admin.sh"
