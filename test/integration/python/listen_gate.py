"""NOTIFY only when someone listens (src/notify.c), against a real server.

Run by test/t/004_listen.pl on a server of its own: python3 listen_gate.py DSN
  1. With no session listening on an "awa:" channel, enqueueing sends no NOTIFY: a session that
     listens on another channel and sits in a transaction (so the notification queue cannot be
     trimmed) sees pg_notification_queue_usage() stay 0 over 1,000 enqueues, each its own
     transaction (as notifications they would fill several queue pages; usage counts pages).
  2. Once a session has run LISTEN "awa:q", an enqueue is notified: the usage rises and the
     listener receives "awa:q" with payload "q" (so step 1 could have failed).
  3. The race: an enqueuer that found no listener is held in its commit (synchronous replication
     to a standby that does not exist); a new LISTEN "awa:race" waits for that commit to finish
     (wait_event_type Extension) and returns once it is visible, so the listener's first look at
     the queue finds the job.
  4. The gate knows every awa channel: a session listening only on "awa.cancel" (awa's own
     channel) or only on "awa#<md5>" (a queue name too long for "awa:<queue>") is counted
     (awa.listening_sessions) and receives its notifications; once it exits it is no longer counted.
Prints "ok - ..." lines; exits non-zero on the first failure.
"""
import sys
import threading
import time

import psycopg

DSN = sys.argv[1]


def connect():
    return psycopg.connect(DSN, autocommit=True)


def one(conn, sql, params=()):
    return conn.execute(sql, params).fetchone()[0]


def fail(msg):
    print("FAIL: listen: " + msg)
    sys.exit(1)


def ok(msg):
    print("ok - " + msg)


def wait_for(what, fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return
        time.sleep(0.02)
    fail("timed out: " + what)


admin = connect()
admin.execute("CREATE EXTENSION IF NOT EXISTS awa")
me = one(admin, "SELECT pg_backend_pid()")


def others():
    return one(admin, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                      " AND pid <> pg_backend_pid() AND datname = current_database()")


# 1. no awa listener: no NOTIFY
stuck = connect()
stuck.execute("LISTEN other_channel")
stuck.execute("BEGIN")
stuck.execute("SELECT 1")
producer = connect()
if one(admin, "SELECT pg_notification_queue_usage()") != 0:
    fail("the notification queue is not empty at the start")
ENQUEUE_1000 = ("DO $$ BEGIN FOR i IN 1..1000 LOOP PERFORM awa_insert('k', queue => 'q'); COMMIT; END LOOP; END $$")
producer.execute(ENQUEUE_1000)
usage = one(admin, "SELECT pg_notification_queue_usage()")
if usage != 0:
    fail("1,000 enqueues with nobody listening on awa: channels queued notifications (usage %r)" % usage)
ok("no session listens on an awa: channel: 1,000 enqueues queue no NOTIFY (queue usage 0)")

# 2. an awa listener: NOTIFY again
listener = connect()
listener.execute('LISTEN "awa:q"')
producer.execute(ENQUEUE_1000)
usage = one(admin, "SELECT pg_notification_queue_usage()")
if not usage > 0:
    fail("with a listener on awa:q, 1,000 enqueues queued no notification")
got = []
listener.add_notify_handler(lambda n: got.append((n.channel, n.payload)))
deadline = time.monotonic() + 10
while len(got) < 1000 and time.monotonic() < deadline:
    listener.execute("SELECT 1")     # the handler runs as the connection reads
    time.sleep(0.05)
if len(got) != 1000 or set(got) != {("awa:q", "q")}:
    fail("the listener got %d notifications %r, not 1,000 of ('awa:q', 'q')" % (len(got), set(got)))
ok("after LISTEN \"awa:q\" the same 1,000 enqueues notify (usage %.2g); the listener receives 1,000 x awa:q / q"
   % usage)
stuck.execute("ROLLBACK")
for c in (stuck, listener, producer):
    c.close()
wait_for("the sessions of steps 1-2 to end", lambda: others() == 0)

# 4. awa's own channel and hashed queue channels open the gate too
wait_for("awa.listening_sessions to return to 0",
         lambda: one(admin, "SELECT current_setting('awa.listening_sessions')::int") == 0)
long_queue = "L" * 70
hashed = "awa#" + one(admin, "SELECT md5(%s)", (long_queue,))
for channel, action, expect in (
        ("awa.cancel",
         "SELECT awa_insert('k', queue => 'c'); SELECT awa_cancel(id) FROM awa_claim('c')",
         lambda got: len(got) == 1 and got[0][1].startswith('{"id": ')),
        (hashed, "SELECT awa_insert('k', queue => '%s')" % long_queue,
         lambda got: got == [(hashed, long_queue)])):
    solo = connect()
    solo.execute('LISTEN "%s"' % channel)
    if one(admin, "SELECT current_setting('awa.listening_sessions')::int") != 1:
        fail("a session listening on %s is not counted as an awa listener" % channel)
    got = []
    solo.add_notify_handler(lambda n: got.append((n.channel, n.payload)))
    producer = connect()
    for statement in action.split("; "):
        producer.execute(statement)
    wait_for("the notification on %s" % channel, lambda: solo.execute("SELECT 1") and got)
    if not expect(got) or got[0][0] != channel:
        fail("the session listening on %s got %r" % (channel, got))
    solo.close()
    producer.close()
    wait_for("the listener on %s to be uncounted" % channel,
             lambda: one(admin, "SELECT current_setting('awa.listening_sessions')::int") == 0)
    ok("a session listening only on %s is counted, receives %r, and is uncounted once it exits"
       % (channel, got[0][1][:40]))

# 3. the race, made deterministic with a commit held by synchronous replication
admin.execute("ALTER SYSTEM SET synchronous_standby_names = 'awa_no_such_standby'")
admin.execute("SELECT pg_reload_conf()")
time.sleep(0.3)
try:
    enq = connect()
    enq_pid = one(enq, "SELECT pg_backend_pid()")
    enq_done = threading.Event()

    def enqueue():
        try:
            enq.execute("SELECT awa_insert('k', queue => 'race')")
        finally:
            enq_done.set()

    threading.Thread(target=enqueue, daemon=True).start()
    wait_for("the enqueuer to wait in its commit (SyncRep)",
             lambda: one(admin, "SELECT wait_event = 'SyncRep' FROM pg_stat_activity WHERE pid = %s",
                         [enq_pid]) is True)

    late = connect()
    late.execute("SET synchronous_commit = local")
    late_pid = one(late, "SELECT pg_backend_pid()")
    late_done = threading.Event()
    seen = []

    def listen():
        late.execute('LISTEN "awa:race"')
        late_done.set()
        seen.append(one(late, "SELECT count(*) FROM awa.jobs WHERE queue = 'race'"))

    threading.Thread(target=listen, daemon=True).start()
    time.sleep(0.7)
    if late_done.is_set():
        fail("LISTEN returned while an enqueuer that saw no listener was still committing")
    state = admin.execute("SELECT state, wait_event_type FROM pg_stat_activity WHERE pid = %s",
                          [late_pid]).fetchone()
    if state != ("active", "Extension"):
        fail("the new listener is not waiting in awa (pg_stat_activity: %r)" % (state,))
    ok("a new LISTEN waits (wait_event_type Extension) while an enqueuer that saw no listener commits")

    admin.execute("SELECT pg_cancel_backend(%s)", [enq_pid])   # ends the SyncRep wait; the commit stands
    if not enq_done.wait(10):
        fail("the enqueuer did not finish after pg_cancel_backend")
    if not late_done.wait(10):
        fail("LISTEN did not return after the enqueuer's commit finished")
    wait_for("the listener's first look", lambda: len(seen) == 1)
    if seen != [1]:
        fail("right after LISTEN the listener sees %r race jobs, not 1" % seen)
    ok("LISTEN returns once that commit is visible; the listener's first look finds the job")
    late.close()
    enq.close()
finally:
    admin.execute("ALTER SYSTEM RESET synchronous_standby_names")
    admin.execute("SELECT pg_reload_conf()")
