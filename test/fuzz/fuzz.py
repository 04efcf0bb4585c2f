#!/usr/bin/python3
"""Fuzz every awa_* SQL function with generated calls.

Usage: fuzz.py DBNAME   (PGHOST/PGPORT/PGUSER from the environment)
  FUZZ_CALLS  number of calls (default 5000)
  FUZZ_SEED   seed (default: random; always printed, so a run can be replayed)
  FUZZ_VERBOSE=1  print every call and its outcome
  FUZZ_CHECK_EVERY=N  check the invariants after every N calls and stop at the
                  first violation, printing the calls since the last check
                  (to find the call that breaks one)

The functions are discovered at run time from pg_proc (proname LIKE 'awa\\_%'),
with their argument names and types.  Each call runs in its own transaction
(autocommit) with statement_timeout = 5s and gets random, boundary and
wrong-typed values; valid calls (insert, claim without blocking more than
0.1 s, complete/fail/snooze with right and wrong leases, ...) are mixed in so
that state changes.  Pass condition:
  * the server never crashes (no lost connection; an idle sentinel session
    survives the run; the database's transaction counters never go back);
  * every failure is an ERROR with a SQLSTATE, none of class XX or 58;
  * no call hangs past statement_timeout;
  * after the run: each job in exactly one consistent state, attempt <=
    max_attempts, and awa_queue_stats() equals a recount of awa.jobs.
On the ring engine (DBNAME created with awa.install_engine = ring: awa.jobs is
the ring's view; test/t/008_fuzz_ring.pl) the valid calls also enqueue jobs
with a concurrency key and with parents (after => a job seen, each
on_parent_failure), and maintenance runs among the calls: awa_maintain(),
and the open slot sealed and the sealed ones reclaimed (awa.ring_rotate,
awa.ring_reclaim: carry, history, TRUNCATE); the invariants include the
ring's own (test/lib/awa_invariants.py, check_ring), checked once midway
and at the end.
Exit 0 on pass, 1 on failure (with the failing calls printed).
"""
import collections
import os
import random
import sys
import threading
import time

import psycopg

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import awa_invariants  # noqa: E402

DB = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PGDATABASE", "awa_fuzz")
CALLS = int(os.environ.get("FUZZ_CALLS", "5000"))
SEED = int(os.environ.get("FUZZ_SEED", str(random.SystemRandom().randrange(1, 2**31))))
VERBOSE = os.environ.get("FUZZ_VERBOSE") == "1"
CHECK_EVERY = int(os.environ.get("FUZZ_CHECK_EVERY", "0"))
STATEMENT_TIMEOUT_MS = 5000
PROCEDURE_TIMEOUT_MS = 1000
HANG_MS = 15000          # a call still running after this ignores statement_timeout: a bug
MAX_WAIT = 0.1           # never block in a claim longer than this

rnd = random.Random(SEED)
RING = False        # set in main(): awa.jobs is the ring's view

INT2 = (-32768, 32767)
INT4 = (-2147483648, 2147483647)
INT8 = (-9223372036854775808, 9223372036854775807)

# ---------------------------------------------------------------------------
# literals


def q(s):
    """SQL string literal (standard_conforming_strings is on)."""
    return "'" + s.replace("'", "''") + "'"


HOSTILE_STRINGS = [
    "", " ", "x", "*", "%", "_", "\\", "\\\\", "'", "''", '"', "\t\n\r",
    "x'); DROP TABLE awa.jobs; --",
    "'; DELETE FROM awa.jobs; --",
    "$$; DROP SCHEMA awa CASCADE; $$",
    '"We""ird"', 'We"ird', '"', "Robert'); DROP TABLE students;--",
    "%s%s%s%n", "%d%x%p", "{}", "[]", "null", "NULL", "default",
    "ユニコード", "😀🎉", "e\u0301", "\u202eRTL", "\u00a0nbsp", "ß", "İ",
    "a" * 199, "a" * 200, "a" * 201, "é" * 200, "😀" * 201,
    "awa:default", "pg_catalog", "awa.jobs", "..", "../../etc/passwd",
    "-1", "0", "9223372036854775808", "1e309", "NaN", "infinity",
]
QUEUES = ["default", "fq1", "fq2", "x'); DROP TABLE awa.jobs; --", '"We""ird"', "ユニコード😀"]
KINDS = ["email", "report", "x'); DROP TABLE awa.jobs; --", '"We""ird"', "ünïcode"]
STATES = ["scheduled", "available", "running", "completed", "retryable", "failed",
          "cancelled", "waiting_external"]

TEXT_EXPRS = [
    "repeat('x', 10000)", "repeat('x', 1000000)", "repeat('é', 300000)",
    "repeat('''); DROP TABLE awa.jobs; --', 1000)", "chr(1)", "chr(127)", "chr(65533)",
    "chr(1114111)", "current_user", "NULL::text", "''::text",
    "convert_from('\\xc328'::bytea, 'UTF8')",
]

TIMEZONES = ["UTC", "Mars/Olympus", "+99:99", "", "America/New_York", "Europe/Berlin",
             "Australia/Lord_Howe", "Asia/Kathmandu", "Pacific/Chatham", "EST5EDT", "-14",
             "+14:00", "UTC+25", "XYZ", "posix/Europe/London", "localtime", "Etc/GMT-14",
             "America/Nowhere", "../../../../etc/passwd", "a" * 300, "UTC'; --", "utc", "Z"]

CRONS = ["* * * * *", "*/5 * * * *", "0 0 * * *", "0 0 1 1 *", "0 0 29 2 *", "0 0 31 2 *",
         "0 0 30 2 *", "59 23 31 12 *", "*/0 * * * *", "60 * * * *", "* 24 * * *",
         "* * 0 * *", "* * 32 * *", "* * * 13 *", "* * * * 8", "* * * * 7", "-1 * * * *",
         "1-0 * * * *", "5-1 * * * *", "0-59/61 * * * *", "*/2147483648 * * * *",
         "0-4294967296 * * * *", "99999999999999999999 * * * *", "* * * * * *",
         "* * * *", "", " ", "@yearly", "@monthly", "@weekly", "@daily", "@hourly",
         "@reboot", "@every 5s", "@bogus", "L * * * *", "0 0 L * *", "0 0 * * 5#3",
         "0 0 ? * MON-FRI", "0 0 * JAN-DEC SUN-SAT", "0 0 * * MON,TUE,xyz", ",,,,",
         "*/ * * * *", "/5 * * * *", "1,2,3,,4 * * * *", "\u0663 * * * *", "*\t*\t*\t*\t*",
         "* * * * *\n* * * * *", "0 0 1 * 1", "0 0 13 * 5", "* " * 1000,
         "1," * 5000 + "1 * * * *", "0 0 31 4,6,9,11 *", "x'); DROP TABLE awa.jobs; --"]

INTERVALS = ["0", "1 microsecond", "1 s", "-1 s", "10 ms", "100 ms", "5 minutes", "1 hour",
             "1 day", "-1 day", "30 days", "1 mon", "-1000000 years", "1000000 years",
             "178000000 years", "-178000000 years", "2147483647 days", "-2147483648 days",
             "2147483647 months", "-2147483648 months", "9223372036854775807 microseconds",
             "-9223372036854775807 microseconds", "1 year -365 days", "P1Y2M3DT4H5M6S",
             "@ 1 minute ago"]
BAD_INTERVALS = ["infinity", "-infinity", "forever", "1 fortnight", "", "9999999999999 years",
                 "1e400 s", "NaN"]

TIMESTAMPS = ["now()", "'infinity'", "'-infinity'", "'4713-01-01 BC'", "'4714-11-24 00:00:00+00 BC'",
              "'294276-12-31 23:59:59+00'", "'epoch'", "now() + interval '1 s'",
              "now() + interval '1 hour'", "now() - interval '1 hour'", "now() + interval '100 years'",
              "now() - interval '100 years'", "'2000-02-29 12:00:00+14'", "'2038-01-19 03:14:08+00'",
              "'1970-01-01 00:00:00+00'", "'today'", "'tomorrow'", "'yesterday'", "'allballs'"]
BAD_TIMESTAMPS = ["'2020-13-45'", "'4714-11-23 BC'", "'294277-01-01'", "'not a time'", "''", "'1e10'"]


def json_str(s):
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ord(ch) < 0x20:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


JSON_SCALARS = ["null", "true", "false", "0", "-0", "1", "-1", "1.5", "1e308", "-1e308", "1e-400",
                "123456789012345678901234567890", "9223372036854775808", "-9223372036854775809",
                "32768", "2147483648", '""', '"x"', '"\\u0000"', '"\\ud800"', '"😀"',
                json_str("x'); DROP TABLE awa.jobs; --"), json_str('"We""ird"')]


def rand_json_value(depth=0):
    r = rnd.random()
    if depth > 3 or r < 0.4:
        return rnd.choice(JSON_SCALARS + [json_str(rnd.choice(HOSTILE_STRINGS))])
    if r < 0.7:
        return "[" + ",".join(rand_json_value(depth + 1) for _ in range(rnd.randrange(0, 4))) + "]"
    return "{" + ",".join("%s:%s" % (json_str(rnd.choice(HOSTILE_STRINGS + ["a", "b", "kind"])),
                                      rand_json_value(depth + 1))
                          for _ in range(rnd.randrange(0, 4))) + "}"


# filled from awa_insert's argument names at run time
JOB_FIELDS = ["kind", "args", "queue", "priority", "max_attempts", "run_at", "tags", "metadata"]


def job_field_value(name):
    choices = {
        "kind": [json_str(rnd.choice(KINDS)), json_str(""), json_str("a" * 201), "null", "1", "[]"],
        "queue": [json_str(rnd.choice(QUEUES)), json_str(""), "null", "{}", "true"],
        "priority": ["1", "4", "0", "5", "-1", "32768", "2147483648", "1.5", '"2"', "null", '"high"'],
        "max_attempts": ["1", "25", "1000", "1001", "0", "-5", "2147483648", "null", '"x"'],
        "run_at": ['"infinity"', '"-infinity"', '"4713-01-01 BC"', '"2020-13-45"', "null", "0",
                   '"2000-01-01T00:00:00Z"', '"3000-01-01T00:00:00Z"'],
        "tags": ["[]", '["a","b"]', "[null]", "[[1]]", '"a"', "[" + ",".join(['"t"'] * 25) + "]", "null"],
        "args": ["{}", "[]", '{"n":1}', "1", '"s"', "null", rand_json_value()],
        "metadata": ["{}", "[]", '{"a":1}', "1", "null", rand_json_value()],
        "unique_by_args": ["true", "false", '"yes"', "1", "null"],
        "unique_by_queue": ["true", "false", "null", "[]"],
        "unique_period": ['"1 hour"', '"-1000000 years"', '"infinity"', '"bogus"', "null", "3600"],
        "unique_states": ['["available","running"]', '["scheduled","available","running","retryable","waiting_external","completed"]', "[]", '["bogus"]', "[null]", '"completed"', "null"],
    }
    return rnd.choice(choices.get(name, [rand_json_value()]))


def rand_job_object():
    fields = [f for f in JOB_FIELDS if rnd.random() < 0.4]
    if rnd.random() < 0.85 and "kind" not in fields:
        fields.insert(0, "kind")
    parts = ["%s:%s" % (json_str(f), job_field_value(f)) for f in fields]
    if rnd.random() < 0.1:
        parts.append('"unknown_field":1')
    return "{" + ",".join(parts) + "}"


def jsonb_value(pname):
    """An SQL expression of (mostly) type jsonb."""
    r = rnd.random()
    if pname in ("jobs",) and r < 0.6:
        n = rnd.choice([0, 1, 2, 3, 10])
        return q("[" + ",".join(rand_job_object() for _ in range(n)) + "]") + "::jsonb"
    cases = [
        lambda: "'{}'::jsonb", lambda: "'[]'::jsonb", lambda: "'null'::jsonb", lambda: "NULL::jsonb",
        lambda: q(rnd.choice(JSON_SCALARS)) + "::jsonb",
        lambda: q(rand_json_value()) + "::jsonb",
        lambda: q('{"n": %d}' % rnd.randrange(1000)) + "::jsonb",
        # deep nesting: parses fine at 10,000; at 100,000+ it may hit stack depth (54001)
        lambda: "(repeat('[', 10000) || repeat(']', 10000))::jsonb",
        lambda: "(repeat('{\"a\":', 10000) || '1' || repeat('}', 10000))::jsonb",
        lambda: "(repeat('[', 200000) || repeat(']', 200000))::jsonb",
        # huge: around and above the 1 MB args limit
        lambda: "jsonb_build_object('blob', repeat('x', %d))" % rnd.choice([1000, 1048000, 1048576, 1100000, 5000000]),
        lambda: "(SELECT jsonb_agg(g) FROM generate_series(1, %d) g)" % rnd.choice([10, 100000, 300000]),
        lambda: "(SELECT jsonb_object_agg('k' || g, g) FROM generate_series(1, %d) g)" % rnd.choice([10, 100000]),
        lambda: q("[" + ",".join(rand_job_object() for _ in range(rnd.randrange(1, 5))) + "]") + "::jsonb",
        lambda: q(rand_job_object()) + "::jsonb",
        lambda: "(SELECT jsonb_agg(jsonb_build_object('kind', 'bulk', 'args', jsonb_build_object('i', g))) FROM generate_series(1, %d) g)" % rnd.choice([1, 100, 5000, 20000]),
        lambda: "'{\"a\":\"\\u0000\"}'::jsonb",
        lambda: "'{\"a\": 1, \"a\": 2}'::jsonb",
        lambda: "'[1,2'::jsonb",          # invalid: 22P02
        lambda: "'nan'::jsonb",
        lambda: "to_jsonb('NaN'::numeric)",
        lambda: "to_jsonb(1e1000::numeric)",
    ]
    return rnd.choice(cases)()


def int_value(lo, hi, cast):
    cases = [0, 1, -1, 2, 3, 4, 5, 10, 100, lo, hi, lo + 1, hi - 1, rnd.randrange(-1000, 1000),
             rnd.randrange(lo, hi)]
    v = rnd.choice(cases)
    if rnd.random() < 0.05:
        return "(%d)" % (hi + 1) if rnd.random() < 0.5 else "(%d)" % (lo - 1)   # out of range: 22003 / type lookup
    return "(%d)::%s" % (v, cast) if v < 0 else "%d::%s" % (v, cast)


def interval_value(pname):
    if is_capped(pname):
        return rnd.choice(["'0'::interval", "'10 ms'::interval", "'50 ms'::interval",
                           "'%d ms'::interval" % int(MAX_WAIT * 1000), "'-1 s'::interval",
                           "'-1000000 years'::interval", "'-2147483648 days'::interval",
                           "'-9223372036854775807 microseconds'::interval", "NULL::interval",
                           "'1 microsecond'::interval", "'-1 mon'::interval"])
    if rnd.random() < 0.1:
        return q(rnd.choice(BAD_INTERVALS)) + "::interval"
    return q(rnd.choice(INTERVALS)) + "::interval"


def timestamptz_value():
    if rnd.random() < 0.1:
        return rnd.choice(BAD_TIMESTAMPS) + "::timestamptz"
    t = rnd.choice(TIMESTAMPS)
    return "(%s)::timestamptz" % t


def text_value(pname):
    if "zone" in pname or pname in ("tz",):
        if rnd.random() < 0.8:
            return q(rnd.choice(TIMEZONES))
    if "cron" in pname or "schedule" in pname:
        if rnd.random() < 0.85:
            return q(rnd.choice(CRONS))
    if pname in ("queue",) and rnd.random() < 0.5:
        return q(rnd.choice(QUEUES))
    if pname in ("kind",) and rnd.random() < 0.4:
        return q(rnd.choice(KINDS))
    if rnd.random() < 0.15:
        return rnd.choice(TEXT_EXPRS)
    return q(rnd.choice(HOSTILE_STRINGS))


class Pool:
    """Ids and leases seen, so fuzzed calls hit real jobs often."""

    def __init__(self):
        self.jobs = {}       # id -> last lease seen

    def add_rows(self, rows, cols):
        if "id" in cols and "run_lease" in cols:
            i, l = cols.index("id"), cols.index("run_lease")
            for r in rows:
                if r[i] is not None:
                    self.jobs[r[i]] = r[l]

    def job(self):
        if not self.jobs:
            return (1, 1)
        k = rnd.choice(list(self.jobs))
        return (k, self.jobs[k])


pool = Pool()


def bigint_value(pname):
    if pname in ("job_id", "id", "before_id") and rnd.random() < 0.6:
        return "%d::bigint" % pool.job()[0]
    if pname in ("run_lease", "lease") and rnd.random() < 0.5:
        return "(%d)::bigint" % (pool.job()[1] + rnd.choice([0, 0, 1, -1]))
    return int_value(*INT8, "bigint")


def bigint_array_value(pname):
    r = rnd.random()
    if r < 0.35:
        n = rnd.choice([1, 2, 5])
        js = [pool.job() for _ in range(n)]
        idx = 0 if pname in ("ids", "job_ids") else 1
        vals = [str(j[idx] + (rnd.choice([0, 0, 1]) if idx == 1 else 0)) for j in js]
        return "'{%s}'::bigint[]" % ",".join(vals)
    return rnd.choice([
        "'{}'::bigint[]", "'{NULL}'::bigint[]", "'{1,NULL,3}'::bigint[]", "NULL::bigint[]",
        "'{{1,2},{3,4}}'::bigint[]", "'{{{1}}}'::bigint[]", "'[0:1]={1,2}'::bigint[]",
        "'[-2147483648:-2147483647]={1,2}'::bigint[]",
        "'{-9223372036854775808,9223372036854775807}'::bigint[]", "'{0}'::bigint[]",
        "(SELECT array_agg(g) FROM generate_series(1, %d) g)" % rnd.choice([1000, 100000, 1000000]),
        "array_fill(1::bigint, ARRAY[100000])", "array_fill(NULL::bigint, ARRAY[3])",
        "'{1,2,3}'::bigint[]", "'{1}'::bigint[]", "'{1,1,1}'::bigint[]",
    ])


def text_array_value():
    return rnd.choice([
        "'{}'::text[]", "'{NULL}'::text[]", "'{a,b}'::text[]", "NULL::text[]", "'{\"\"}'::text[]",
        "'{{a,b},{c,d}}'::text[]", "array_fill('t'::text, ARRAY[21])", "array_fill('t'::text, ARRAY[20])",
        "array_fill('t'::text, ARRAY[100000])", "ARRAY[repeat('x', 1000000)]",
        "ARRAY[%s, %s]" % (q(rnd.choice(HOSTILE_STRINGS)), q(rnd.choice(HOSTILE_STRINGS))),
        "'[5:6]={a,b}'::text[]", "'{\"We\"\"ird\",\"x\\'); DROP TABLE awa.jobs; --\"}'::text[]",
    ])


def enum_value(typ, labels):
    r = rnd.random()
    if r < 0.75 and labels:
        return q(rnd.choice(labels)) + "::" + typ
    return rnd.choice([q("bogus") + "::" + typ, "NULL::" + typ, q(""), q("COMPLETED")])


def enum_array_value(typ, labels):
    r = rnd.random()
    if r < 0.5 and labels:
        k = rnd.randrange(0, len(labels) + 1)
        return "'{%s}'::%s" % (",".join(rnd.sample(labels, k)), typ)
    return rnd.choice(["'{}'::" + typ, "'{NULL}'::" + typ, "NULL::" + typ, "'{bogus}'::" + typ,
                       "'{{running},{failed}}'::" + typ,
                       "'{%s}'::%s" % (",".join(labels * 3), typ) if labels else "'{}'::" + typ])


WRONG_TYPED = [
    "'abc'", "'1.5'", "1.5", "'{}'::jsonb", "'[]'::jsonb", "true", "'x'::text", "now()",
    "'1 day'::interval", "ARRAY[1,2]", "'{}'::int[]", "'\\x00'::bytea", "point(1,2)",
    "ROW(1,2)", "'9999999999999999999999999'", "99999999999999999999999999", "'NaN'::float8",
    "'infinity'::float8", "'-1e309'", "''", "'  1  '", "'0x10'", "'1_000'",
]


def value_for(typ, pname, enums):
    """An SQL expression for one argument of type typ (format_type output)."""
    r = rnd.random()
    if r < 0.07:
        return "NULL"
    if r < 0.12 and not is_capped(pname):   # (a wrong-typed value could be a long wait)
        return rnd.choice(WRONG_TYPED)
    t = typ
    if t == "bigint":
        return bigint_value(pname)
    if t == "integer":
        if pname in ("batch", "lim", "n", "limit") and rnd.random() < 0.6:
            return str(rnd.choice([0, 1, 2, 5, 10, 100, 1000, 1001, -1, 10001]))
        return int_value(*INT4, "integer")
    if t == "smallint":
        return int_value(*INT2, "smallint")
    if t in ("numeric", "double precision", "real"):
        return rnd.choice(["0", "-1", "1e308", "'NaN'::" + t, "'infinity'::" + t, "'-infinity'::" + t])
    if t == "text" or t == "character varying" or t == "name":
        return text_value(pname)
    if t == "jsonb" or t == "json":
        return jsonb_value(pname) + ("::json" if t == "json" else "")
    if t == "boolean":
        return rnd.choice(["true", "false", "'yes'", "'maybe'", "1", "NULL::boolean"])
    if t == "interval":
        return interval_value(pname)
    if t in ("timestamp with time zone", "timestamp without time zone", "date"):
        return timestamptz_value()
    if t == "bigint[]":
        return bigint_array_value(pname)
    if t == "integer[]":
        return rnd.choice(["'{}'::int[]", "'{NULL}'::int[]", "'{2147483647,-2147483648}'::int[]",
                           "'{{1},{2}}'::int[]", "NULL::int[]"])
    if t == "text[]":
        return text_array_value()
    if t in enums:
        return enum_value(t, enums[t])
    if t.endswith("[]") and t[:-2] in enums:
        return enum_array_value(t, enums[t[:-2]])
    if t == "bytea":
        return rnd.choice(["'\\x'::bytea", "'\\x00ff'::bytea", "decode(repeat('ff', 100000), 'hex')", "NULL::bytea"])
    if t == "uuid":
        return rnd.choice(["gen_random_uuid()", "'00000000-0000-0000-0000-000000000000'::uuid", "'bogus'"])
    # unknown / polymorphic type: untyped literals
    return rnd.choice(["NULL", q(rnd.choice(HOSTILE_STRINGS)), "'1'", "'{}'"])


# ---------------------------------------------------------------------------
# the database side


class Func:
    def __init__(self, row):
        (self.oid, self.schema, self.name, self.kind, self.retset, self.rettype,
         self.argnames, self.argtypes, self.ndefaults, self.variadic, self.signature) = row
        self.nargs = len(self.argtypes)

    def qualified(self):
        return '"%s"."%s"' % (self.schema.replace('"', '""'), self.name.replace('"', '""'))


def discover(conn):
    rows = conn.execute(r"""
        SELECT p.oid, n.nspname, p.proname, p.prokind, p.proretset, format_type(p.prorettype, NULL),
               coalesce((SELECT array_agg(coalesce(p.proargnames[i + 1], '') ORDER BY i)
                           FROM generate_series(0, coalesce(array_length(p.proallargtypes, 1), p.pronargs) - 1) i
                          WHERE coalesce(p.proargmodes[i + 1], 'i') IN ('i', 'b', 'v')), '{}'),
               coalesce((SELECT array_agg(format_type(t, NULL) ORDER BY o)
                           FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(t, o)), '{}'),
               p.pronargdefaults, p.provariadic <> 0, p.oid::regprocedure::text
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE p.proname LIKE 'awa\_%' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
         ORDER BY p.proname, p.oid""").fetchall()
    funcs = [Func(r) for r in rows]
    enums = {}
    for typ, labels in conn.execute("""
            SELECT format_type(t.oid, NULL), array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
              FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY 1"""):
        enums[typ] = labels
    return funcs, enums


def is_capped(pname):
    return any(w in pname for w in ("wait", "timeout", "sleep", "block", "duration"))


def build_call(f, enums):
    """SQL text calling f with generated arguments, and whether a wait-like
    argument (capped at MAX_WAIT) was passed."""
    notation = rnd.random()
    capped = False
    args = []
    for i, (name, typ) in enumerate(zip(f.argnames, f.argtypes)):
        args.append((name, typ, value_for(typ, name, enums)))
    first_default = f.nargs - f.ndefaults
    if f.variadic or notation < 0.35 or not all(a[0] for a in args):
        # positional, leaving out a random number of trailing defaults
        keep = rnd.randrange(first_default, f.nargs + 1) if f.ndefaults else f.nargs
        if rnd.random() < 0.03:
            keep = max(0, keep + rnd.choice([-1, 1]))   # wrong arity: 42883
        parts = [a[2] for a in args[:keep]]
        capped = any(is_capped(a[0]) for a in args[:keep])
        if f.variadic and parts:
            parts[-1] = "VARIADIC " + parts[-1]
        argsql = ", ".join(parts)
    else:
        parts = []
        for i, (name, typ, v) in enumerate(args):
            if i >= first_default and rnd.random() < 0.4:
                continue   # leave a defaulted argument out
            parts.append('"%s" => %s' % (name.replace('"', '""'), v))
            capped = capped or is_capped(name)
        if rnd.random() < 0.02:
            parts.append('"no_such_arg" => 1')
        rnd.shuffle(parts)
        argsql = ", ".join(parts)
    call = "%s(%s)" % (f.qualified(), argsql)
    if f.kind == "p":
        return "CALL " + call, capped
    if f.retset:
        if rnd.random() < 0.5:
            return "SELECT * FROM %s LIMIT 1000" % call, capped
        return "SELECT %s LIMIT 1000" % call, capped
    if f.rettype not in ("record", "trigger", "void") and rnd.random() < 0.3:
        return "SELECT (%s) IS NULL" % call, capped
    return "SELECT * FROM %s" % call, capped


def has(funcs, name):
    return any(f.name == name for f in funcs)


def valid_call(funcs):
    """A well-formed call that changes state (or reads it)."""
    names = {f.name for f in funcs}
    acts = []
    if "awa_insert" in names:
        acts += ["insert"] * 6
    if "awa_claim" in names:
        acts += ["claim"] * 5
    if "awa_complete" in names:
        acts += ["complete"] * 3
    for n, w in (("awa_complete_many", 2), ("awa_fail", 2), ("awa_snooze", 1), ("awa_heartbeat", 1),
                 ("awa_progress", 1), ("awa_cancel", 1), ("awa_retry", 1), ("awa_rescue", 1),
                 ("awa_pause_queue", 1), ("awa_resume_queue", 1), ("awa_insert_many", 1),
                 ("awa_retry_failed", 1), ("awa_list_jobs", 1), ("awa_get_job", 1),
                 ("awa_queue_stats", 1), ("awa_next_fire_times", 1), ("awa_drain_queue", 0.2),
                 ("awa_set_queue_limit", 1), ("awa_wait_external", 1), ("awa_complete_external", 1),
                 ("awa_group_on_finish", 1)):
        if n in names:
            acts += [n[4:]] * int(w * 5) if w >= 1 else ([n[4:]] if rnd.random() < w else [])
    if RING:
        acts += ["insert_keyed"] * 2 + ["insert_after"] * 3 + ["maintain", "rotate", "reclaim"] * 2
    if not acts:
        return None
    a = rnd.choice(acts)
    queue = q(rnd.choice(QUEUES))
    jid, lease = pool.job()
    if a == "insert":
        extra = []
        if rnd.random() < 0.3:
            extra.append("run_at => now() + interval '%d ms'" % rnd.choice([-1000, 10, 200, 2000]))
        if rnd.random() < 0.3:
            extra.append("max_attempts => %d" % rnd.randrange(1, 4))
        if rnd.random() < 0.2:
            extra.append("tags => ARRAY['t1', %s]" % q(rnd.choice(HOSTILE_STRINGS)))
        if rnd.random() < 0.1:
            extra.append("unique_by_args => true")
        if "awa_group_on_finish" in names and rnd.random() < 0.3:
            extra.append("group_id => 'fg%d'" % rnd.randrange(30))
        return ("SELECT * FROM awa_insert(%s, args => %s, queue => %s, priority => %d%s)"
                % (q(rnd.choice(KINDS)), q('{"n": %d}' % rnd.randrange(50)) + "::jsonb", queue,
                   rnd.randrange(1, 5), "".join(", " + e for e in extra)))
    if a == "insert_keyed":
        return ("SELECT * FROM awa_insert('keyed', queue => %s, concurrency_key => 'ck%d')"
                % (queue, rnd.randrange(4)))
    if a == "insert_after":
        parents = sorted({pool.job()[0] for _ in range(rnd.randrange(1, 4))})
        return ("SELECT * FROM awa_insert('child', queue => %s, after => '{%s}', on_parent_failure => %s%s)"
                % (queue, ",".join(str(p) for p in parents), q(rnd.choice(["cancel", "run", "wait"])),
                   rnd.choice(["", "", ", run_at => now() + interval '200 ms'", ", group_id => 'fg%d'" % rnd.randrange(30)])))
    if a == "maintain":
        return "SELECT awa_maintain()"
    if a == "rotate":
        return "SELECT * FROM awa.ring_rotate(%d, '1 microsecond')" % rnd.choice([1, 1, 10, 100])
    if a == "reclaim":
        return "SELECT * FROM awa.ring_reclaim(%d)" % rnd.choice([1000, 1000, 5, 0])
    if a == "claim":
        wait = rnd.choice(["0", "0", "0", "20 ms", "%d ms" % int(MAX_WAIT * 1000)])
        return ("SELECT * FROM awa_claim(%s, worker => 'fuzz', batch => %d, lease => %s, wait => '%s')"
                % (queue, rnd.choice([1, 1, 3, 10]), q(rnd.choice(["1 s", "5 minutes", "100 ms"])), wait))
    if a == "complete":
        return "SELECT awa_complete(%d, %d)" % (jid, lease + rnd.choice([0, 0, 0, 1, -1]))
    if a == "complete_many":
        js = [pool.job() for _ in range(rnd.randrange(1, 6))]
        return ("SELECT awa_complete_many('{%s}', '{%s}')"
                % (",".join(str(j[0]) for j in js), ",".join(str(j[1] + rnd.choice([0, 0, 1])) for j in js)))
    if a == "fail":
        return ("SELECT awa_fail(%d, %d, %s, retry_in => %s, terminal => %s)"
                % (jid, lease, q(rnd.choice(HOSTILE_STRINGS)), rnd.choice(["NULL", "'1 s'", "'0'"]),
                   rnd.choice(["false", "false", "true"])))
    if a == "snooze":
        return "SELECT awa_snooze(%d, %d, %s)" % (jid, lease, rnd.choice(["'0'", "'100 ms'", "'1 hour'"]))
    if a == "heartbeat":
        return "SELECT awa_heartbeat('{%d}', '{%d}')" % (jid, lease)
    if a == "progress":
        return "SELECT awa_progress(%d, %d, '{\"pct\": %d}')" % (jid, lease, rnd.randrange(101))
    if a == "cancel":
        return "SELECT * FROM awa_cancel(%d)" % jid
    if a == "retry":
        return "SELECT * FROM awa_retry(%d)" % jid
    if a == "rescue":
        return "SELECT awa_rescue()"
    if a == "pause_queue":
        return "SELECT awa_pause_queue(%s, 'fuzz')" % queue
    if a == "resume_queue":
        return "SELECT awa_resume_queue(%s)" % queue
    if a == "drain_queue":
        return "SELECT awa_drain_queue(%s)" % queue
    if a == "set_queue_limit":
        return "SELECT * FROM awa_set_queue_limit(%s, %s)" % (queue, rnd.choice(["NULL", "NULL", "1", "2", "5"]))
    if a == "wait_external":
        # register a callback and park (its timeout may well pass before anyone answers)
        return ("SELECT awa_wait_external(%d, %d) FROM (SELECT awa_register_callback(%d, %d, %s) AS cb) r"
                % (jid, lease, jid, lease, q(rnd.choice(["100 ms", "1 s", "1 hour"]))))
    if a == "group_on_finish":
        # a group's finish callback (42710 once the group has one)
        return "SELECT awa_group_on_finish('fg%d', 'fuzz_group_done', queue => %s)" % (rnd.randrange(30), queue)
    if a == "complete_external":
        # register, maybe park, then answer the callback (before or after the park)
        answer = rnd.choice(["awa_complete_external(r.cb, '{\"ok\": 1}')",
                             "awa_fail_external(r.cb, %s)" % q(rnd.choice(HOSTILE_STRINGS)),
                             "awa_retry_external(r.cb, retry_in => %s)" % rnd.choice(["NULL", "'0'", "'1 s'"]),
                             "awa_heartbeat_callback(r.cb, %s)" % rnd.choice(["NULL", "'1 s'"])])
        park = "awa_wait_external(%d, %d), " % (jid, lease) if rnd.random() < 0.7 else ""
        return ("SELECT %s%s FROM (SELECT awa_register_callback(%d, %d, '1 s') AS cb) r"
                % (park, answer, jid, lease))
    if a == "insert_many":
        uniq = rnd.choice(["", "", ", \"unique_by_args\": true", ", \"unique_by_queue\": true, \"unique_period\": 60"])
        return ("SELECT * FROM awa_insert_many('[{\"kind\": \"many\", \"queue\": %s%s}, {\"kind\": \"many2\", \"queue\": %s}]')"
                % (json_str(rnd.choice(QUEUES)).replace("'", "''"), uniq, json_str(rnd.choice(QUEUES)).replace("'", "''")))
    if a == "retry_failed":
        return "SELECT * FROM awa_retry_failed(queue => %s)" % queue
    if a == "list_jobs":
        return "SELECT * FROM awa_list_jobs(queue => %s, lim => 10)" % queue
    if a == "get_job":
        return "SELECT * FROM awa_get_job(%d)" % jid
    if a == "queue_stats":
        return "SELECT * FROM awa_queue_stats()"
    if a == "next_fire_times":
        return "SELECT * FROM awa_next_fire_times(%s, %s)" % (q(rnd.choice(CRONS[:8])), q(rnd.choice(TIMEZONES[:10])))
    return None


def guc_call(gucs):
    name, vmin, vmax = rnd.choice(gucs)
    vals = ["0", "-1", "1", "2147483647", "-2147483648", "99999999999", "'on'", "'off'", "''", "'bogus'",
            "'1s'", "'1min'", "'1h'", "'7d'"]
    if vmin is not None:
        vals += [vmin, vmax]
    v = rnd.choice(vals)
    if not v.startswith("'"):
        v = "'%s'" % v
    return "SELECT set_config(%s, %s, false)" % (q(name), v)


# ---------------------------------------------------------------------------


def short(s, n=400):
    s = " ".join(s.split())
    return s if len(s) <= n else s[:n] + " ...[%d chars]" % len(s)


class Watchdog:
    """Cancels, then terminates, a call that outlives HANG_MS (and records it)."""

    def __init__(self, admin_dsn):
        self.admin_dsn = admin_dsn
        self.lock = threading.Lock()
        self.current = None     # (pid, started, sql)
        self.hangs = []
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            time.sleep(0.5)
            with self.lock:
                cur = self.current
            if not cur:
                continue
            pid, started, sqltext = cur
            age = (time.monotonic() - started) * 1000
            if age > HANG_MS:
                try:
                    with psycopg.connect(self.admin_dsn, autocommit=True) as c:
                        fn = "pg_cancel_backend" if age < 2 * HANG_MS else "pg_terminate_backend"
                        c.execute("SELECT %s(%%s)" % fn, (pid,))
                except Exception:
                    pass
                with self.lock:
                    if self.current is cur and (not self.hangs or self.hangs[-1][1] != sqltext):
                        self.hangs.append((pid, sqltext, age))


class RawLoader(psycopg.adapt.Loader):
    """Results as strict UTF-8 text: Python cannot hold every PostgreSQL value
    (years BC or after 9999, JSON nested 10,000 deep), and invalid UTF-8 from
    the server must still show up as an error."""

    def load(self, data):
        return bytes(data).decode("utf-8")


RAW_TYPES = ["timestamptz", "timestamp", "date", "time", "timetz", "interval", "json", "jsonb",
             "numeric", "float4", "float8", "text", "varchar", "bpchar", "name"]


def connect():
    c = psycopg.connect(dbname=DB, autocommit=True)
    for t in RAW_TYPES:
        c.adapters.register_loader(t, RawLoader)
    c.execute("SET statement_timeout = %d" % STATEMENT_TIMEOUT_MS)
    c.execute("SET lock_timeout = '2s'")
    c.execute("SET client_min_messages = warning")
    return c


def main():
    global RING
    print("fuzz: seed %d (replay: FUZZ_SEED=%d FUZZ_CALLS=%d), database %s" % (SEED, SEED, CALLS, DB))
    t0 = time.monotonic()
    conn = connect()
    sentinel = psycopg.connect(dbname=DB, autocommit=True)   # idle the whole run: any crash kills it
    sentinel_pid = sentinel.info.backend_pid
    start_time = sentinel.execute("SELECT pg_postmaster_start_time()").fetchone()[0]

    def xact_count(c):
        return c.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()").fetchone()[0]

    xacts0 = xact_count(sentinel)
    try:
        log_offset = os.path.getsize(os.path.join(os.environ.get("PGHOST", ""), "log"))
    except OSError:
        log_offset = None
    funcs, enums = discover(conn)
    RING = awa_invariants.on_ring(conn)
    print("fuzz: engine %s" % ("ring (awa.jobs is the ring's view)" if RING else "table"))
    midway_errs = []
    global JOB_FIELDS
    for f in funcs:
        if f.name == "awa_insert" and f.argnames:
            JOB_FIELDS = list(f.argnames)
    print("fuzz: %d awa_* functions found: %s" % (len(funcs), ", ".join(f.signature for f in funcs)))
    gucs = [(r[0], r[1], r[2]) for r in conn.execute(
        "SELECT name, min_val, max_val FROM pg_settings WHERE name LIKE 'awa.%' AND context = 'user'")]
    watchdog = Watchdog("dbname=%s" % DB)
    # procedures run for a duration (cut short by PROCEDURE_TIMEOUT_MS): fewer calls
    weights = [(1 + f.nargs) / (4 if f.kind == "p" else 1) for f in funcs]

    stats = collections.Counter()              # (function, outcome) -> count
    per_func = collections.Counter()
    bugs = []        # (kind, sql, detail)
    notices = collections.Counter()
    crashes = 0
    calls = 0

    def on_notice(d):
        notices[(d.severity, d.sqlstate)] += 1
    conn.add_notice_handler(on_notice)

    recent = []
    for n in range(CALLS):
        if CHECK_EVERY and n and n % CHECK_EVERY == 0:
            errs = check_invariants(sentinel)
            if errs:
                print("fuzz: invariants broken after call %d; the calls since the last check:" % (n - 1))
                for i, t in recent:
                    print("  %5d %s" % (i, short(t, 600)))
                for e in errs:
                    print("  violation: " + e)
                return 1
            recent = []
        if RING and n == CALLS // 2:
            # midway, while the ring is busy (the end may find most jobs finished)
            midway_errs = ["midway: " + e for e in check_invariants(sentinel)]
        r = rnd.random()
        label = None
        capped = False
        if r < 0.30:
            sqltext = valid_call(funcs)
            capped = bool(sqltext) and "wait =>" in sqltext
            if sqltext:
                label = "valid:" + sqltext.replace("awa.ring_", "awa_ring_").split("awa_", 1)[1].split("(", 1)[0]
        elif r < 0.32 and gucs:
            sqltext = guc_call(gucs)
            label = "set_config(awa.*)"
        if not label:
            f = rnd.choices(funcs, weights)[0]
            sqltext, capped = build_call(f, enums)
            label = f.name
        per_func[label] += 1
        calls += 1
        if CHECK_EVERY:
            recent.append((n, sqltext))
        with watchdog.lock:
            watchdog.current = (conn.info.backend_pid, time.monotonic(), sqltext)
        started = time.monotonic()
        try:
            if sqltext.startswith("CALL "):
                # procedures run for a duration (awa_maintain_for: 58 s by default);
                # a short timeout keeps the run's length, the call still gets checked
                conn.execute("SET statement_timeout = %d" % PROCEDURE_TIMEOUT_MS)
            cur = conn.execute(sqltext)
            rows = cur.fetchall() if cur.description else []
            if cur.description:
                pool.add_rows(rows, [d.name for d in cur.description])
            outcome = "ok"
        except psycopg.Error as e:
            state = e.sqlstate
            if conn.closed or conn.broken:
                crashes += 1
                outcome = "CONNECTION LOST"
                bugs.append(("connection lost (backend crash?)", sqltext, str(e).strip()))
                print("fuzz: CONNECTION LOST on call %d: %s\n      %s" % (n, short(sqltext), short(str(e))), flush=True)
                for _ in range(60):
                    try:
                        time.sleep(0.5)
                        conn = connect()
                        conn.add_notice_handler(on_notice)
                        break
                    except psycopg.OperationalError:
                        continue
                else:
                    print("fuzz: server did not come back")
                    break
            elif state is None:
                outcome = "no SQLSTATE"
                bugs.append(("error without SQLSTATE", sqltext, "%s: %s" % (type(e).__name__, e)))
            else:
                outcome = state
                if state == "57014" and capped:
                    bugs.append(("blocked until statement_timeout although its wait argument was NULL, "
                                 "negative or <= %g s" % MAX_WAIT, sqltext, str(e).strip()))
                    print("fuzz: BLOCKED on call %d: %s" % (n, short(sqltext)), flush=True)
                if state[:2] in ("XX", "58"):
                    bugs.append(("internal error %s" % state, sqltext, str(e).strip()))
                    print("fuzz: INTERNAL ERROR %s on call %d: %s\n      %s" % (state, n, short(sqltext), short(str(e))), flush=True)
        except (UnicodeDecodeError, ValueError) as e:
            # the result could not be read: e.g. the server sent text that is not valid UTF-8
            outcome = "bad result"
            bugs.append(("unreadable result (%s)" % type(e).__name__, sqltext, str(e)))
            print("fuzz: UNREADABLE RESULT on call %d: %s\n      %s" % (n, short(sqltext), short(str(e))), flush=True)
        finally:
            with watchdog.lock:
                watchdog.current = None
        if sqltext.startswith("CALL ") and not (conn.closed or conn.broken):
            conn.execute("SET statement_timeout = %d" % STATEMENT_TIMEOUT_MS)
        elapsed = time.monotonic() - started
        if VERBOSE:
            print("%5d %-28s %-8s %6.0f ms  %s" % (n, label, outcome, elapsed * 1000, short(sqltext, 200)))
        stats[(label, outcome)] += 1

    watchdog.stop = True
    for pid, sqltext, age in watchdog.hangs:
        bugs.append(("hang: ignored statement_timeout (%.0f ms)" % age, sqltext, "backend %d" % pid))

    # ---- crash detection beyond the connection: the sentinel, the counters, the postmaster
    try:
        sentinel.execute("SELECT 1").fetchone()
        if sentinel.info.backend_pid != sentinel_pid:
            raise psycopg.OperationalError("sentinel reconnected")
        st2 = sentinel.execute("SELECT pg_postmaster_start_time()").fetchone()[0]
        xacts1 = xact_count(sentinel)
        if st2 != start_time:
            bugs.append(("postmaster restarted", "-", "%s -> %s" % (start_time, st2)))
        if xacts1 < xacts0:
            bugs.append(("statistics reset (crash recovery?)", "-", "xacts %d -> %d" % (xacts0, xacts1)))
    except psycopg.Error as e:
        bugs.append(("idle sentinel session lost: the server crashed or restarted", "-", str(e).strip()))
        sentinel = psycopg.connect(dbname=DB, autocommit=True)

    # ---- the server log, when it is where scripts/lib.sh puts it ($PGHOST/log)
    logfile = os.path.join(os.environ.get("PGHOST", ""), "log")
    if log_offset is not None and os.path.exists(logfile):
        with open(logfile, "rb") as fh:
            fh.seek(log_offset)
            for line in fh.read().decode("utf-8", "replace").splitlines():
                if any(k in line for k in ("terminated by signal", "PANIC", "TRAP:", "was terminated by exception")):
                    bugs.append(("server log", "-", line.strip()))
                elif "Failed process was running" in line:
                    bugs.append(("server log", "-", line.strip()))

    # ---- invariants
    inv = midway_errs + check_invariants(sentinel)
    for msg in inv:
        bugs.append(("invariant", "-", msg))

    dur = time.monotonic() - t0
    # ---- summary table: function x outcome
    outcomes = sorted({o for (_, o) in stats}, key=lambda s: (s != "ok", s))
    labels = sorted(per_func)
    print("\nfuzz: outcome per function (ok = no error; otherwise the SQLSTATE)")
    w = max(len(x) for x in labels) + 1
    for lab in labels:
        cells = ["%s=%d" % (o, stats[(lab, o)]) for o in outcomes if stats[(lab, o)]]
        print("  %-*s %5d  %s" % (w, lab, per_func[lab], " ".join(cells)))
    tot = collections.Counter()
    for (_, o), c in stats.items():
        tot[o] += c
    print("fuzz: totals by outcome: " + ", ".join("%s=%d" % (o, tot[o]) for o in outcomes))
    if notices:
        print("fuzz: notices/warnings: " + ", ".join("%s %s=%d" % (k[0], k[1], v) for k, v in sorted(notices.items())))
    jobs = sentinel.execute("SELECT state::text, count(*) FROM awa.jobs GROUP BY 1 ORDER BY 1").fetchall()
    print("fuzz: jobs at the end: " + ", ".join("%s=%d" % r for r in jobs))
    print("fuzz: %d calls in %.1f s (seed %d), %d connection losses" % (calls, dur, SEED, crashes))
    if bugs:
        print("\nfuzz: FAILED: %d problem(s):" % len(bugs))
        seen = set()
        for kind, sqltext, detail in bugs:
            key = (kind, sqltext, detail if kind == "invariant" else None)   # every violated invariant
            if key in seen:
                continue
            seen.add(key)
            print("  - %s\n      call:  %s\n      error: %s" % (kind, short(sqltext, 1000), short(detail, 600)))
        print("fuzz: replay with FUZZ_SEED=%d FUZZ_CALLS=%d" % (SEED, CALLS))
        return 1
    print("fuzz: PASS: no crash, no hang, every error has a SQLSTATE, none internal; invariants hold")
    return 0


def check_invariants(conn):
    errs = awa_invariants.check(conn)
    errs += check_groups(conn)
    print("fuzz: invariant check: %s" % ("ok (stats equal a recount)" if not errs else "%d violations" % len(errs)))
    return errs


def check_groups(conn):
    """Finish callbacks: each enqueued one job at most (the recorded one, unless something
    deleted it since), and a pending one waits for an unfinished job of its group (else a
    finish was missed)."""
    if not conn.execute("SELECT to_regclass('awa.group_callbacks') IS NOT NULL").fetchone()[0]:
        return []
    errs = []
    for g, job_id, jobs, recorded in conn.execute("""
            SELECT c.group_id, c.callback_job_id,
                   (SELECT count(*) FROM awa.jobs j WHERE j.metadata ->> 'finished_group' = c.group_id),
                   (SELECT count(*) FROM awa.jobs j WHERE j.id = c.callback_job_id)
              FROM awa.group_callbacks c WHERE c.callback_job_id IS NOT NULL"""):
        if jobs != recorded:
            errs.append("group %s: %d callback jobs, want the recorded one (%s, %s)"
                        % (g, jobs, job_id, "present" if recorded else "deleted since"))
    for (g,) in conn.execute("""
            SELECT c.group_id FROM awa.group_callbacks c WHERE c.callback_job_id IS NULL
               AND NOT EXISTS (SELECT 1 FROM awa.jobs j WHERE j.group_id = c.group_id
                                  AND j.state NOT IN ('completed', 'failed', 'cancelled'))"""):
        errs.append("group %s: finished, its callback pending" % g)
    n = conn.execute("SELECT count(*) FROM awa.group_callbacks WHERE callback_job_id IS NOT NULL").fetchone()[0]
    print("fuzz: group callbacks: %d enqueued, %s" % (n, "ok" if not errs else "%d violations" % len(errs)))
    return errs


if __name__ == "__main__":
    sys.exit(main())
