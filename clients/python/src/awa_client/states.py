"""The states of an awa job, as the extension defines them (awa.job_state).

Made by scripts/gen_states.py from src/job_state.def in the extension's source: do not edit.
"""

# Every state, in the order of the SQL enum awa.job_state.
STATES = ("scheduled", "available", "running", "completed", "retryable", "failed", "cancelled", "waiting_external")
# States a job can still leave by itself; awa_cancel cancels a job in one of them.
LIVE_STATES = ("scheduled", "available", "running", "retryable", "waiting_external")
# Finished states.
FINAL_STATES = ("completed", "failed", "cancelled")
# States from which an operator may retry a job (awa_retry).
RETRYABLE_STATES = ("failed", "cancelled", "waiting_external")
