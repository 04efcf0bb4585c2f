#!/usr/bin/python3
"""Write what is made from src/job_state.def, the one definition of awa's job states.

    scripts/gen_states.py           write the files below
    scripts/gen_states.py --check   write nothing; exit 1 naming every file that differs

Files made (never edit them by hand):
  src/job_state_sql.h                        the state sets as SQL lists, and the unique_states bit strings
  clients/python/src/awa_client/states.py   STATES, LIVE_STATES, FINAL_STATES, RETRYABLE_STATES
  sql/job_state.sql, expected/job_state.out  a regression test: the installed enum awa.job_state, the bit of
                                             each state in awa.unique_state_held and the CHECK constraint on
                                             unique_states must be what the definition says

So a change of the states is made in src/job_state.def, then this script is run; `--check` (scripts/lint.sh)
fails while a made file is out of date, and the regression test fails while the SQL disagrees.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEF = os.path.join(ROOT, "src", "job_state.def")
FLAGS = ("waiting", "held", "final", "retry", "unique")
LINE = re.compile(r"^AWA_JOB_STATE\(\s*(\w+)\s*,\s*(\w+)\s*" + r",\s*([01])\s*" * len(FLAGS) + r"\)\s*$")


def read_states():
    states = []
    with open(DEF, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("AWA_JOB_STATE("):
                continue
            m = LINE.match(line.strip())
            if not m:
                sys.exit(f"{DEF}: cannot read: {line.strip()}")
            name, label, *flags = m.groups()
            if name != label.upper():
                sys.exit(f"{DEF}: {name} must be the label {label} in capitals")
            states.append(dict(name=name, label=label, **{k: v == "1" for k, v in zip(FLAGS, flags)}))
    if len(states) != 8:
        sys.exit(f"{DEF}: {len(states)} states; unique_states is a bit(8) in SQL")
    for s in states:
        if s["final"] == (s["waiting"] or s["held"]):
            sys.exit(f"{DEF}: {s['label']} must be either final or live (waiting or held)")
    return states


def labels(states, pred):
    return [s["label"] for s in states if pred(s)]


def sets(states):
    """The named sets, in enum order: (C name, labels, what it is)."""
    return [
        ("LIVE", labels(states, lambda s: s["waiting"] or s["held"]),
         "a job can still leave by itself (awa_cancel cancels these)"),
        ("WAITING", labels(states, lambda s: s["waiting"]), "claimable once run_at has come"),
        ("PROMOTABLE", labels(states, lambda s: s["waiting"] and s["label"] != "available"),
         "waiting, but not yet available: maintenance promotes them when due"),
        ("QUEUED", labels(states, lambda s: s["waiting"] or (s["held"] and s["retry"])),
         "waiting to run or on an external system (awa_drain_queue cancels these)"),
        ("HELD", labels(states, lambda s: s["held"]), "a worker holds it: cancelling it tells the worker"),
        ("FINAL", labels(states, lambda s: s["final"]), "finished"),
        ("RETRY", labels(states, lambda s: s["retry"]), "an operator may retry it (awa_retry)"),
    ]


def bits(states, pred):
    return "".join("1" if pred(s) else "0" for s in states)


def sql_list(ls):
    return "(" + ", ".join(f"'{l}'" for l in ls) + ")"


def c_header(states):
    out = [
        "/* Made by scripts/gen_states.py from src/job_state.def: do not edit. */",
        "#ifndef AWA_JOB_STATE_SQL_H",
        "#define AWA_JOB_STATE_SQL_H",
        "",
        "/* The state sets as SQL lists, for \"state IN \" in saved statements. */",
    ]
    for name, ls, what in sets(states):
        out.append(f"/* {what} */")
        out.append(f'#define AWA_STATES_{name}_SQL "{sql_list(ls)}"')
    out += [
        "",
        "/* unique_states bit strings (bit i = state i of awa.job_state). */",
        "/* Default unique_states of a unique job. */",
        f'#define AWA_DEFAULT_UNIQUE_STATES "{bits(states, lambda s: s["unique"])}"',
        "/*",
        " * The states every unique_states set must hold (the live ones): awa",
        " * moves a job between them by itself, so a key held in some and not",
        " * others would collide in awa's own transitions.  Also a CHECK",
        " * constraint on awa.jobs (jobs_unique_states_live).",
        " */",
        f'#define AWA_LIVE_UNIQUE_STATES "{bits(states, lambda s: s["waiting"] or s["held"])}"',
        "",
        "#endif\t\t\t\t\t\t\t/* AWA_JOB_STATE_SQL_H */",
        "",
    ]
    return "\n".join(out)


def py_tuple(ls):
    return "(" + ", ".join(f'"{l}"' for l in ls) + ")"


def py_lines(name, ls, per_line=None):
    """NAME = ("a", "b", ...), per_line items a line (all on one line by default)."""
    head = f"{name} = ("
    per_line = per_line or len(ls)
    rows = [", ".join(f'"{l}"' for l in ls[i:i + per_line]) for i in range(0, len(ls), per_line)]
    return [(head if i == 0 else " " * len(head)) + r + ("," if i < len(rows) - 1 else ")")
            for i, r in enumerate(rows)]


def python_module(states):
    s = dict((n, ls) for n, ls, _ in sets(states))
    return "\n".join([
        '"""The states of an awa job, as the extension defines them (the SQL type awa.job_state).',
        "",
        "This module is the only place the Python client, worker and Django app list job",
        "states; everything else imports these tuples.  It is made by scripts/gen_states.py",
        "from src/job_state.def, the extension's one definition of the states: do not edit it.",
        "",
        "- ``STATES``: every state, in the order of the SQL enum (``enum_range(NULL::awa.job_state)``).",
        "- ``LIVE_STATES``: a job in one of these may still run: it waits (scheduled, available,",
        "  retryable, waiting_external) or runs (running).  ``awa_cancel`` acts on these.",
        "- ``FINAL_STATES``: a job in one of these is settled and never runs again by itself.",
        "- ``RETRYABLE_STATES``: the states ``awa_retry`` accepts: such a job becomes available",
        "  now with its attempts reset; in any other state ``awa_retry`` returns no row.",
        '"""',
        "",
        *py_lines("STATES", labels(states, lambda x: True), 4),
        "",
        *py_lines("LIVE_STATES", s["LIVE"]),
        "",
        *py_lines("FINAL_STATES", s["FINAL"]),
        "",
        *py_lines("RETRYABLE_STATES", s["RETRY"]),
        "",
        '__all__ = ["STATES", "LIVE_STATES", "FINAL_STATES", "RETRYABLE_STATES"]',
        "",
    ])


def regress_sql():
    return "\n".join([
        "-- The job states in SQL agree with src/job_state.def (made by scripts/gen_states.py: do not edit).",
        "CREATE EXTENSION awa;",
        "-- the enum, in order",
        "SELECT enum_range(NULL::awa.job_state);",
        "-- state i holds bit i of unique_states",
        "SELECT s.label, awa.unique_state_held(set_bit(B'00000000', (s.i - 1)::int, 1), s.label) AS bit_held",
        "FROM unnest(enum_range(NULL::awa.job_state)) WITH ORDINALITY AS s(label, i) ORDER BY s.i;",
        "-- every unique_states must hold the live states",
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'jobs_unique_states_live';",
        "DROP EXTENSION awa;",
        "",
    ])


def header(name, width):
    """A one-column psql header line: the name centred (odd space on the right), a space each side."""
    left = (width - len(name)) // 2
    return " " + " " * left + name + " " * (width - len(name) - left) + " "


def regress_expected(states):
    ls = labels(states, lambda x: True)
    width = max(len("label"), *(len(l) for l in ls))
    rows = [f" {l.ljust(width)} | t" for l in ls]
    live = bits(states, lambda s: s["waiting"] or s["held"])
    cdef = f"CHECK (((unique_states IS NULL) OR ((unique_states & '{live}'::\"bit\") = '{live}'::\"bit\")))"
    return "\n".join([
        "-- The job states in SQL agree with src/job_state.def (made by scripts/gen_states.py: do not edit).",
        "CREATE EXTENSION awa;",
        "-- the enum, in order",
        "SELECT enum_range(NULL::awa.job_state);",
        header("enum_range", len("{" + ",".join(ls) + "}")),
        "-" + "-" * len("{" + ",".join(ls) + "}") + "-",
        " {" + ",".join(ls) + "}",
        "(1 row)",
        "",
        "-- state i holds bit i of unique_states",
        "SELECT s.label, awa.unique_state_held(set_bit(B'00000000', (s.i - 1)::int, 1), s.label) AS bit_held",
        "FROM unnest(enum_range(NULL::awa.job_state)) WITH ORDINALITY AS s(label, i) ORDER BY s.i;",
        " " + "label".center(width) + " | bit_held ",
        "-" * (width + 2) + "+----------",
        *rows,
        f"({len(ls)} rows)",
        "",
        "-- every unique_states must hold the live states",
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'jobs_unique_states_live';",
        header("pg_get_constraintdef", len(cdef)),
        "-" * (len(cdef) + 2),
        " " + cdef,
        "(1 row)",
        "",
        "DROP EXTENSION awa;",
        "",
    ])


def main():
    check = sys.argv[1:] == ["--check"]
    if sys.argv[1:] not in ([], ["--check"]):
        sys.exit(__doc__)
    states = read_states()
    made = {
        "src/job_state_sql.h": c_header(states),
        "clients/python/src/awa_client/states.py": python_module(states),
        "sql/job_state.sql": regress_sql(),
        "expected/job_state.out": regress_expected(states),
    }
    stale = []
    for rel, text in made.items():
        path = os.path.join(ROOT, rel)
        try:
            with open(path, encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current == text:
            continue
        if check:
            stale.append(rel)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            print(f"wrote {rel}")
    if stale:
        print("out of date with src/job_state.def (run scripts/gen_states.py): " + ", ".join(stale))
        sys.exit(1)


if __name__ == "__main__":
    main()
