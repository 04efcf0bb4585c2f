-- The job states in SQL agree with src/job_state.def (made by scripts/gen_states.py: do not edit).
CREATE EXTENSION awa;
-- the enum, in order
SELECT enum_range(NULL::awa.job_state);
-- state i holds bit i of unique_states
SELECT s.label, awa.unique_state_held(set_bit(B'00000000', (s.i - 1)::int, 1), s.label) AS bit_held
FROM unnest(enum_range(NULL::awa.job_state)) WITH ORDINALITY AS s(label, i) ORDER BY s.i;
-- every unique_states must hold the live states
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'jobs_unique_states_live';
DROP EXTENSION awa;
