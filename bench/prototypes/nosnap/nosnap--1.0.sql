CREATE PROCEDURE nosnap_wait(total_ms bigint, poll_ms bigint) AS 'MODULE_PATHNAME', 'nosnap_wait' LANGUAGE C;
CREATE FUNCTION nosnap_sleep_in_statement(total_ms bigint) RETURNS void
	AS 'MODULE_PATHNAME', 'nosnap_sleep_in_statement' LANGUAGE C VOLATILE;
