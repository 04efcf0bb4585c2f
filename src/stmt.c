/*-------------------------------------------------------------------------
 *
 * stmt.c
 *		The SPI statement layer: a statement is declared once (AwaStmt: its
 *		name for errors, its SQL, its parameter types, the result it must
 *		give), prepared at its first run and kept, and its result columns
 *		are read by name.
 *
 *	static AwaStmt resume = AWA_STMT("awa_resume_queue: update", SPI_OK_UPDATE,
 *		"UPDATE awa.queue_meta SET paused = false WHERE queue = $1 AND paused",
 *		1, TEXTOID);
 *	if (awa_stmt_run(&resume, values, NULL, 0) == 1) ...
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"

#include "awa.h"
#include "engine_admin.h"

/*
 * Return the plan cached in *cache, preparing and saving it on first use.
 *
 * Plans are kept for the life of the backend; the plan cache replans them
 * when awa's tables change.  They are generic plans: awa's statements are
 * short index lookups whose best plan does not depend on the parameter
 * values, and custom plans would cost a planner run on every call (measured:
 * claim + complete ran at half the speed with them).  Parameter types must be built-in types so that
 * a dropped and re-created extension never leaves a plan with stale type
 * OIDs behind.  They run without JIT (engine_jit.c).
 */
SPIPlanPtr
awa_plan(SPIPlanPtr *cache, const char *sql, int nargs, const Oid *argtypes)
{
	return awa_plan_opts(cache, sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);
}

/*
 * awa_plan with other planner options (CURSOR_OPT_CUSTOM_PLAN for the few
 * statements whose best plan depends on the values).
 */
SPIPlanPtr
awa_plan_opts(SPIPlanPtr *cache, const char *sql, int nargs,
			  const Oid *argtypes, int cursor_options)
{
	if (*cache == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, (Oid *) argtypes,
											  cursor_options);

		if (plan == NULL)
			elog(ERROR, "awa: SPI_prepare failed: %s",
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "awa: SPI_keepplan failed");
		awa_engine_jit_exempt(plan);	/* hook: rjit */
		*cache = plan;
	}
	return *cache;
}


/*
 * Run a statement (prepared and kept at its first run) with these
 * parameters, at most tcount rows (0: all), and return SPI_processed; its
 * rows are in SPI_tuptable.  A result other than the one it was declared
 * with is an internal error naming the statement.  Caller is in SPI.
 *
 * An INSERT, UPDATE or DELETE always runs to its end, whatever tcount says:
 * PostgreSQL fires AFTER ... FOR EACH STATEMENT triggers only when the
 * statement's ModifyTable node runs out of rows, and a count limit stops it
 * at its last row before that; the job counters (counters.c) are such
 * triggers.  awa's writing statements given a tcount return one row at
 * most anyway.
 */
uint64
awa_stmt_run(AwaStmt *stmt, Datum *values, const char *nulls, long tcount)
{
	int			ret;

	if (!stmt->read_only && stmt->expect != SPI_OK_SELECT)
		tcount = 0;

	ret = SPI_execute_plan(awa_plan_opts(&stmt->plan, stmt->sql, stmt->nargs,
										 stmt->argtypes,
										 stmt->cursor_options ? stmt->cursor_options :
										 CURSOR_OPT_GENERIC_PLAN),
						   values, nulls, stmt->read_only, tcount);
	if (ret != stmt->expect && !(stmt->expect == AWA_SPI_OK_ANY && ret >= 0))
		elog(ERROR, "%s failed: %s", stmt->name, SPI_result_code_string(ret));
	return SPI_processed;
}

/*
 * The value of a column, by name, of row `row` of the last result; an
 * internal error if the result has no such column.
 */
Datum
awa_stmt_value(uint64 row, const char *column, bool *isnull)
{
	int			n = SPI_fnumber(SPI_tuptable->tupdesc, column);

	if (n <= 0)
		elog(ERROR, "awa: the statement's result has no column \"%s\"", column);
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, n, isnull);
}

/* awa_stmt_value of a bigint column; NULL reads as 0. */
int64
awa_stmt_int8(uint64 row, const char *column)
{
	bool		isnull;
	Datum		d = awa_stmt_value(row, column, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

/* awa_stmt_value of a boolean column; NULL reads as false. */
bool
awa_stmt_bool(uint64 row, const char *column)
{
	bool		isnull;
	Datum		d = awa_stmt_value(row, column, &isnull);

	return !isnull && DatumGetBool(d);
}
