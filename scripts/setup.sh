#!/usr/bin/env bash
# Install the Debian 12 packages that building awa, its tests, the demo and the
# benchmarks need (apt-get; run as root).  The one place that lists them:
# scripts/quickstart.sh and scripts/test.sh run this first, bench/run.sh
# through awa_install_packages (scripts/lib.sh).
#   scripts/setup.sh [EXTRA_PACKAGE...]
# Runs apt-get update + install only when a package is missing.
set -euo pipefail

# build: build-essential .. libkrb5-dev; pg_regress/isolation: postgresql-client-15;
# pgTAP: postgresql-15-pgtap + pg_prove; TAP tests (make installcheck): libipc-run-perl
# (PostgreSQL::Test::Cluster comes with postgresql-client-15); lint: cppcheck,
# clang-tidy; integration tests: the Python drivers and Django, pip/setuptools/venv
# for installing the Python package, Chromium for the dashboard, pgbouncer, pg_cron,
# the Prometheus exporter and client, PL/Proxy (the sharding router, docs/sharding.md).
AWA_PACKAGES="build-essential postgresql-15 postgresql-client-15 postgresql-server-dev-15 libkrb5-dev
 postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl libipc-run-perl
 python3 python3-django python3-psycopg python3-psycopg2 python3-pip python3-setuptools python3-venv
 cppcheck clang-tidy
 chromium chromium-driver python3-selenium pgbouncer postgresql-15-cron
 prometheus-postgres-exporter python3-prometheus-client postgresql-15-plproxy"

missing=()
for p in $AWA_PACKAGES "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	printf '\n==> %s\n' "installing packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts a default cluster on 5432 when postgresql-15 is installed; awa's scripts do not use it.
