"""awa_client.states is the one list of job states, and it agrees with the extension.

Without a database: the four tuples are consistent, the Django migration's frozen choices equal
STATES, and no other module of the packages spells out a list of states.  With one (AWA_TEST_DSN):
STATES is the SQL enum awa.job_state in its order, and awa_retry / awa_cancel act on exactly
RETRYABLE_STATES / LIVE_STATES.
"""
import ast
import os
import unittest

import awa_client
import awa_client.states
from awa_client.states import FINAL_STATES, LIVE_STATES, RETRYABLE_STATES, STATES
from support import DSN, requires_database


def _package_dir(name):
    """The directory of an installed or source package, found without importing it (awa_django
    needs Django to import)."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(awa_client.__file__))), name)


def _python_files(*packages):
    for pkg in packages:
        for d, dirs, files in os.walk(_package_dir(pkg)):
            dirs[:] = [x for x in dirs if x != "__pycache__"]
            for f in files:
                if f.endswith(".py"):
                    yield os.path.join(d, f)


class StateListTests(unittest.TestCase):
    def test_names_and_order(self):
        self.assertEqual(STATES, ("scheduled", "available", "running", "completed",
                                  "retryable", "failed", "cancelled", "waiting_external"))
        for t in (STATES, LIVE_STATES, FINAL_STATES, RETRYABLE_STATES):
            self.assertIsInstance(t, tuple)
            self.assertEqual(len(set(t)), len(t), t)

    def test_live_and_final_partition_the_states(self):
        self.assertEqual(set(LIVE_STATES) | set(FINAL_STATES), set(STATES))
        self.assertEqual(set(LIVE_STATES) & set(FINAL_STATES), set())
        self.assertTrue(set(RETRYABLE_STATES) <= set(STATES))
        # the subsets keep the enum's order
        for t in (LIVE_STATES, FINAL_STATES, RETRYABLE_STATES):
            self.assertEqual(list(t), [s for s in STATES if s in t])

    def test_migration_choices_equal_states(self):
        """0001_initial keeps its literal choices (migrations are frozen); they must be STATES."""
        path = os.path.join(_package_dir("awa_django"), "migrations", "0001_initial.py")
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        found = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Tuple) and len(node.elts) == 2 \
                    and isinstance(node.elts[0], ast.Constant) and node.elts[0].value == "state":
                field = node.elts[1]
                for kw in field.keywords:
                    if kw.arg == "choices":
                        found.append(ast.literal_eval(kw.value))
        self.assertEqual(len(found), 1, "one 'state' field with choices in %s" % path)
        self.assertEqual([value for value, label in found[0]], list(STATES))
        self.assertEqual([label for value, label in found[0]], list(STATES))

    def test_no_other_module_lists_states(self):
        """A tuple, list or set literal of two or more state names and nothing else, anywhere else
        in the packages, is a second state list (migrations are frozen history and are left
        out; the columns of awa_queue_stats and the worker's outcomes are not state lists)."""
        states_py = os.path.realpath(awa_client.states.__file__)
        checked, offenders = 0, []
        for path in _python_files("awa_client", "awa_worker", "awa_django"):
            if os.path.realpath(path) == states_py or os.sep + "migrations" + os.sep in path:
                continue
            checked += 1
            with open(path) as f:
                tree = ast.parse(f.read(), path)
            for node in ast.walk(tree):
                if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(node.elts) >= 2 \
                        and all(isinstance(e, ast.Constant) and e.value in STATES for e in node.elts):
                    offenders.append("%s:%d %s" % (path, node.lineno, [e.value for e in node.elts]))
        self.assertGreaterEqual(checked, 8, "the packages' modules were found")
        self.assertEqual(offenders, [])


@requires_database
class StatesInTheDatabaseTests(unittest.TestCase):
    def setUp(self):
        self.db = awa_client.Client(DSN)
        self.addCleanup(self.db.close)
        self.db.execute("DELETE FROM awa.jobs")

    def value(self, sql, params=()):
        return self.db.execute(sql, params)[1][0][0]

    def test_states_are_the_sql_enum_in_order(self):
        self.assertEqual(self.value("SELECT enum_range(NULL::awa.job_state)::text[]"), list(STATES))

    def job_in(self, state):
        """A job put in state through the API (so on either engine), alone in its queue."""
        queue = "states_" + state
        run_at = self.value("SELECT now() + interval '1 hour'") if state == "scheduled" else None
        jid = self.db.insert("states.check", {"state": state}, queue=queue, run_at=run_at,
                             max_attempts=1 if state == "failed" else None).id
        if state == "cancelled":
            self.db.cancel(jid)
        elif state not in ("available", "scheduled"):
            (job,) = self.db.claim(queue, batch=1)
            if state == "completed":
                self.db.complete(jid, job.run_lease)
            elif state in ("retryable", "failed"):
                self.db.fail(jid, job.run_lease, "states", retry_in="1 hour")
            elif state == "waiting_external":
                self.db.register_callback(jid, job.run_lease, "1 hour")
                self.db.wait_external(jid, job.run_lease)
        self.assertEqual(self.value("SELECT state::text FROM awa.jobs WHERE id = %s", [jid]), state)
        return jid

    def acts_on(self, function):
        """The states in which the SQL function (awa_retry or awa_cancel) returns the job."""
        acted = []
        for state in STATES:
            jid = self.job_in(state)
            if self.value("SELECT count(*) FROM %s(%%s)" % function, [jid]):
                acted.append(state)
        return tuple(acted)

    def test_awa_retry_accepts_exactly_the_retryable_states(self):
        self.assertEqual(self.acts_on("awa_retry"), RETRYABLE_STATES)

    def test_awa_cancel_accepts_exactly_the_live_states(self):
        self.assertEqual(self.acts_on("awa_cancel"), LIVE_STATES)


if __name__ == "__main__":
    unittest.main(verbosity=2)
