/* awa--0.2.0--0.3.0.sql — ALTER EXTENSION awa UPDATE TO '0.3.0'
 *
 * The result must equal a fresh install of awa--0.3.0.sql
 * (test/integration/upgrade.sh compares pg_dump --schema-only of both). */

\echo Use "ALTER EXTENSION awa UPDATE TO '0.3.0'" to load this file. \quit
