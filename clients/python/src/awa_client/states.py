"""The states of an awa job, as the extension defines them (the SQL type awa.job_state).

This module is the only place the Python client, worker and Django app list job
states; everything else imports these tuples.  It is made by scripts/gen_states.py
from src/job_state.def, the extension's one definition of the states: do not edit it.

- ``STATES``: every state, in the order of the SQL enum (``enum_range(NULL::awa.job_state)``).
- ``LIVE_STATES``: a job in one of these may still run: it waits (scheduled, available,
  retryable, waiting_external) or runs (running).  ``awa_cancel`` acts on these.
- ``FINAL_STATES``: a job in one of these is settled and never runs again by itself.
- ``RETRYABLE_STATES``: the states ``awa_retry`` accepts: such a job becomes available
  now with its attempts reset; in any other state ``awa_retry`` returns no row.
"""

STATES = ("scheduled", "available", "running", "completed",
          "retryable", "failed", "cancelled", "waiting_external")

LIVE_STATES = ("scheduled", "available", "running", "retryable", "waiting_external")

FINAL_STATES = ("completed", "failed", "cancelled")

RETRYABLE_STATES = ("failed", "cancelled", "waiting_external")

__all__ = ["STATES", "LIVE_STATES", "FINAL_STATES", "RETRYABLE_STATES"]
