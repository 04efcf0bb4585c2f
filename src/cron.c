/*-------------------------------------------------------------------------
 *
 * cron.c
 *		Cron expressions for awa: a parser and a time-zone-aware
 *		calculator of next fire times.
 *
 * Syntax
 * ------
 * Five fields separated by white space:
 *
 *		minute (0-59)  hour (0-23)  day-of-month (1-31)  month (1-12)
 *		day-of-week (0-7, 0 and 7 both Sunday)
 *
 * Each field is a comma-separated list of items; an item is "*", "N",
 * "A-B", "*\/S", "A-B/S" or "N/S" (N to the end of the field's range, every
 * S).  Months may be written JAN..DEC and weekdays SUN..SAT, in any case,
 * also as range ends (MON-FRI).  Ranges do not wrap: FRI-SUN is an error,
 * write 5-7 or FRI,SAT,SUN.  A whole expression may instead be one of the
 * macros @yearly (= @annually), @monthly, @weekly, @daily (= @midnight) and
 * @hourly.
 *
 * Days follow Vixie cron: when both day-of-month and day-of-week are
 * restricted, a day matches if EITHER matches ("0 0 13 * FRI" fires on
 * every 13th and on every Friday); when either field starts with "*"
 * (including a step such as "*\/2"), both must match.
 *
 * Time zones and daylight-saving time
 * -----------------------------------
 * An expression is evaluated against the wall clock of an IANA time zone,
 * using PostgreSQL's own time zone code (pg_tzset, pg_localtime), so
 * "30 2 * * *" in Europe/Berlin means 02:30 Berlin time all year round.
 * Where the wall clock jumps:
 *
 * - Spring forward (a gap): a wall time that does not exist that day fires
 *   once, moved forward by the length of the gap, i.e. read with the UTC
 *   offset in force before the jump.  In Europe/Berlin on 2024-03-31 clocks
 *   go from 02:00 to 03:00, so a daily 02:30 job fires at 03:30 CEST
 *   (01:30 UTC).  This is how PostgreSQL itself reads a nonexistent local
 *   time ('2024-03-31 02:30 Europe/Berlin'::timestamptz is 03:30 CEST).
 *   A fire time that lands on the same instant as another fire time of the
 *   same job counts once, so a job that runs every hour or every minute
 *   does not run twice at 03:00 or at 03:30.
 *
 * - Fall back (a repeat): a wall time that occurs twice that day fires once,
 *   at its first occurrence (in Europe/Berlin on 2024-10-27, a daily 02:30
 *   job fires at 02:30 CEST, 00:30 UTC, and not again at 02:30 CET).  The
 *   exception is a job whose hour field covers every hour ("*", "0-23"):
 *   such a job runs by the real clock and fires at both occurrences, so an
 *   hourly or every-minute job keeps its period through the night.
 *
 * Searching is by day: months that cannot match are skipped whole, days
 * that cannot match are skipped without looking at hours, and on a day with
 * no UTC offset change nearby the first matching minute is found directly.
 * Only days next to an offset change look at each matching wall time.
 * A job that does not fire within ten years (such as "0 0 30 2 *") has no
 * next fire time; ten years is enough for February 29 across 2100.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "cron.h"

/* How far ahead awa_cron_next looks before giving up, in days. */
#define CRON_SEARCH_DAYS		(10 * 366)

/* Largest n awa_next_fire_times accepts. */
#define CRON_MAX_FIRE_TIMES		1000

/* Seconds between the Unix epoch and the PostgreSQL epoch (2000-01-01). */
#define CRON_EPOCH_DIFF_SECS \
	((pg_time_t) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)

/* The hours bitmap of a job that runs in every hour. */
#define CRON_ALL_HOURS			((uint32) 0x00FFFFFF)

/* One of the five fields: its name, range and optional names. */
typedef struct CronField
{
	const char *name;			/* for error messages */
	int			min;			/* lowest value accepted */
	int			max;			/* highest value accepted */
	int			star_max;		/* highest value covered by "*" and "N/S" */
	const char *const *names;	/* three-letter names, or NULL */
	int			nnames;
	int			name_base;		/* value of names[0] */
} CronField;

static const char *const cron_month_names[] = {
	"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
	"JUL", "AUG", "SEP", "OCT", "NOV", "DEC"
};

static const char *const cron_wday_names[] = {
	"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"
};

/* Day-of-week accepts 7 for Sunday, but "*" and "N/S" stop at Saturday. */
static const CronField cron_fields[5] = {
	{"minute", 0, 59, 59, NULL, 0, 0},
	{"hour", 0, 23, 23, NULL, 0, 0},
	{"day-of-month", 1, 31, 31, NULL, 0, 0},
	{"month", 1, 12, 12, cron_month_names, 12, 1},
	{"day-of-week", 0, 7, 6, cron_wday_names, 7, 0}
};

/* A macro and the five fields it stands for. */
typedef struct CronMacro
{
	const char *name;
	const char *fields;
} CronMacro;

static const CronMacro cron_macros[] = {
	{"@yearly", "0 0 1 1 *"},
	{"@annually", "0 0 1 1 *"},
	{"@monthly", "0 0 1 * *"},
	{"@weekly", "0 0 * * 0"},
	{"@daily", "0 0 * * *"},
	{"@midnight", "0 0 * * *"},
	{"@hourly", "0 * * * *"}
};

/* What an error message needs to know about the field being parsed. */
typedef struct CronParseState
{
	const char *expr;			/* the whole expression */
	const CronField *field;
	const char *field_text;
} CronParseState;

/* State of awa_next_fire_times between calls. */
typedef struct CronFireState
{
	AwaCronSpec spec;
	char	   *tzname;
	TimestampTz last;
} CronFireState;

static void cron_field_error(const CronParseState *ps, const char *problem)
			pg_attribute_noreturn();

PG_FUNCTION_INFO_V1(awa_next_fire_times);

/*
 * Report a problem with one field, naming the expression, the field and its
 * text, so the user can see at once which part to fix.
 */
static void
cron_field_error(const CronParseState *ps, const char *problem)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid cron expression \"%s\": %s field \"%s\": %s",
					ps->expr, ps->field->name, ps->field_text, problem)));
}

/*
 * True for the white space that separates fields.  Spelled out rather than
 * isspace() so the locale cannot change what an expression means.
 */
static bool
cron_isspace(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
		c == '\f' || c == '\v';
}

/*
 * Read one value (a number, or a name where the field has names) at *pp,
 * check it is within the field's range and advance *pp past it.
 */
static int
cron_parse_value(const CronParseState *ps, const char *item, const char **pp)
{
	const CronField *f = ps->field;
	const char *p = *pp;
	const char *start = p;
	int			value;

	if (isdigit((unsigned char) *p))
	{
		value = 0;
		while (isdigit((unsigned char) *p))
		{
			/* saturate; anything this large is out of range anyway */
			if (value < 100000)
				value = value * 10 + (*p - '0');
			p++;
		}
		if (value < f->min || value > f->max)
			cron_field_error(ps,
							 psprintf("value %s is out of range %d..%d",
									  pnstrdup(start, p - start),
									  f->min, f->max));
	}
	else if (f->names != NULL && isalpha((unsigned char) *p))
	{
		int			i;

		while (isalpha((unsigned char) *p))
			p++;
		value = -1;
		if (p - start == 3)
		{
			for (i = 0; i < f->nnames; i++)
			{
				if (pg_strncasecmp(start, f->names[i], 3) == 0)
				{
					value = f->name_base + i;
					break;
				}
			}
		}
		if (value < 0)
			cron_field_error(ps,
							 psprintf("unknown %s name \"%s\"",
									  f->name, pnstrdup(start, p - start)));
	}
	else
		cron_field_error(ps,
						 psprintf(f->names != NULL ?
								  "expected a number or a name in \"%s\"" :
								  "expected a number in \"%s\"",
								  item));

	*pp = p;
	return value;
}

/*
 * Parse one list item ("*", "N", "A-B", "*\/S", "A-B/S" or "N/S") and
 * return the bitmap of the values it selects.
 */
static uint64
cron_parse_item(const CronParseState *ps, const char *item)
{
	const CronField *f = ps->field;
	const char *p = item;
	int			lo;
	int			hi;
	int			step = 1;
	bool		single = false;
	uint64		bits = 0;
	int			v;

	if (*p == '\0')
		cron_field_error(ps, "empty item in list");

	if (*p == '*')
	{
		lo = f->min;
		hi = f->star_max;
		p++;
	}
	else
	{
		lo = cron_parse_value(ps, item, &p);
		if (*p == '-')
		{
			p++;
			hi = cron_parse_value(ps, item, &p);
			if (lo > hi)
				cron_field_error(ps,
								 psprintf("range \"%s\" is reversed",
										  pnstrdup(item, p - item)));
		}
		else
		{
			hi = lo;
			single = true;
		}
	}

	if (*p == '/')
	{
		const char *start = ++p;
		int			nvalues = f->star_max - f->min + 1;

		if (!isdigit((unsigned char) *p))
			cron_field_error(ps,
							 psprintf("step \"%s\" is not a number", start));
		step = 0;
		while (isdigit((unsigned char) *p))
		{
			if (step < 100000)
				step = step * 10 + (*p - '0');
			p++;
		}
		if (step < 1 || step > nvalues)
			cron_field_error(ps,
							 psprintf("step %s is out of range 1..%d",
									  pnstrdup(start, p - start), nvalues));
		/* "N/S" runs from N to the end of the field */
		if (single)
			hi = Max(lo, f->star_max);
	}

	if (*p != '\0')
		cron_field_error(ps,
						 psprintf("unexpected text \"%s\" in \"%s\"", p, item));

	for (v = lo; v <= hi; v += step)
		bits |= UINT64CONST(1) << v;
	return bits;
}

/*
 * Parse one whole field, a comma-separated list of items, into a bitmap.
 */
static uint64
cron_parse_field(const char *expr, const CronField *f, const char *text)
{
	CronParseState ps;
	char	   *copy = pstrdup(text);
	char	   *item = copy;
	uint64		bits = 0;

	ps.expr = expr;
	ps.field = f;
	ps.field_text = text;

	for (;;)
	{
		char	   *comma = strchr(item, ',');

		if (comma != NULL)
			*comma = '\0';
		bits |= cron_parse_item(&ps, item);
		if (comma == NULL)
			break;
		item = comma + 1;
	}

	pfree(copy);
	return bits;
}

/*
 * Parse a cron expression (five fields or a macro) into *spec, raising
 * 22023 with a message naming the offending field if it is malformed.
 */
void
awa_cron_parse(const char *expr, AwaCronSpec *spec)
{
	const char *start = expr;
	const char *end;
	char	   *fields[5];
	int			nfields = 0;
	const char *p;
	uint64		wdays;
	int			i;

	while (cron_isspace(*start))
		start++;
	end = start + strlen(start);
	while (end > start && cron_isspace(end[-1]))
		end--;

	if (start == end)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid cron expression \"%s\": expression is empty",
						expr),
				 errhint("Give five fields (minute, hour, day of month, month, day of week) or a macro such as @daily.")));

	if (*start == '@')
	{
		size_t		len = end - start;
		size_t		k;

		for (k = 0; k < lengthof(cron_macros); k++)
		{
			if (strlen(cron_macros[k].name) == len &&
				pg_strncasecmp(start, cron_macros[k].name, len) == 0)
			{
				awa_cron_parse(cron_macros[k].fields, spec);
				return;
			}
		}
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid cron expression \"%s\": unknown macro \"%s\"",
						expr, pnstrdup(start, len)),
				 errhint("Use one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly.")));
	}

	/* split into fields; count all of them so the message can say how many */
	p = start;
	while (p < end)
	{
		const char *fstart = p;

		while (p < end && !cron_isspace(*p))
			p++;
		if (nfields < 5)
			fields[nfields] = pnstrdup(fstart, p - fstart);
		nfields++;
		while (p < end && cron_isspace(*p))
			p++;
	}
	if (nfields != 5)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid cron expression \"%s\": expected 5 fields, found %d",
						expr, nfields),
				 errhint("The fields are minute, hour, day of month, month and day of week.")));

	memset(spec, 0, sizeof(AwaCronSpec));
	spec->minutes = cron_parse_field(expr, &cron_fields[0], fields[0]);
	spec->hours = (uint32) cron_parse_field(expr, &cron_fields[1], fields[1]);
	spec->mdays = (uint32) cron_parse_field(expr, &cron_fields[2], fields[2]);
	spec->months = (uint16) cron_parse_field(expr, &cron_fields[3], fields[3]);
	wdays = cron_parse_field(expr, &cron_fields[4], fields[4]);
	/* 7 is another name for Sunday */
	if (wdays & (UINT64CONST(1) << 7))
		wdays |= 1;
	spec->wdays = (uint8) (wdays & 0x7F);
	spec->mday_star = (fields[2][0] == '*');
	spec->wday_star = (fields[4][0] == '*');

	for (i = 0; i < 5; i++)
		pfree(fields[i]);
}

/*
 * Look up a time zone the way the timezone setting does, raising 22023 for
 * a name PostgreSQL does not know or a zone that counts leap seconds.
 */
static pg_tz *
cron_lookup_timezone(const char *tzname)
{
	pg_tz	   *tz = NULL;

	if (tzname[0] != '\0')
		tz = pg_tzset(tzname);
	if (tz == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("time zone \"%s\" not recognized", tzname),
				 errhint("Use an IANA time zone name such as 'UTC' or 'Europe/Berlin'; pg_timezone_names lists them.")));
	if (!pg_tz_acceptable(tz))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("time zone \"%s\" appears to use leap seconds", tzname),
				 errdetail("PostgreSQL does not support leap seconds.")));
	return tz;
}

/*
 * Validate a time zone name for callers that store it for later, so a bad
 * name is reported when a schedule is created rather than when it runs.
 */
void
awa_cron_check_timezone(const char *tzname)
{
	(void) cron_lookup_timezone(tzname);
}

/*
 * UTC offset (seconds east of Greenwich) of time zone tz at instant t.
 */
static long
cron_utc_offset(pg_tz *tz, pg_time_t t)
{
	struct pg_tm *tm = pg_localtime(&t, tz);

	if (tm == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return tm->tm_gmtoff;
}

/*
 * The UTC offset change near a day, when there is exactly one: then wall
 * times map to instants by arithmetic instead of pg_localtime calls.
 */
typedef struct CronShift
{
	bool		known;			/* false: look each wall time up */
	pg_time_t	boundary;		/* first instant with the new offset */
	long		off_before;
	long		off_after;
} CronShift;

/*
 * The instants at which wall time "wall" (seconds since 1970-01-01 00:00 of
 * the zone's wall clock) happens in zone tz.  Returns 2 and both instants,
 * earlier first, for a time repeated by a fall-back; returns 1 otherwise.
 * A time skipped by a spring-forward is read with the offset in force
 * before the jump, which moves it forward by the length of the gap (see
 * the comment at the top of this file).
 *
 * Without a known shift this assumes at most one offset change within a
 * day either side of "wall", which holds for every zone in the tz database
 * since 1970.
 */
static int
cron_wall_to_instants(pg_tz *tz, const CronShift *shift, pg_time_t wall,
					  pg_time_t *out)
{
	long		off_before;
	long		off_after;
	pg_time_t	t_before;
	pg_time_t	t_after;
	bool		ok_before;
	bool		ok_after;

	if (shift->known)
	{
		off_before = shift->off_before;
		off_after = shift->off_after;

		/* valid before the change iff wall - off_before < boundary */
		if (wall < shift->boundary + Max(off_before, off_after))
			out[0] = wall - off_before;
		else
			out[0] = wall - off_after;
		/* a fall-back repeats [boundary + off_after, boundary + off_before) */
		if (off_after < off_before &&
			wall >= shift->boundary + off_after &&
			wall < shift->boundary + off_before)
		{
			out[1] = wall - off_after;
			return 2;
		}
		return 1;
	}

	off_before = cron_utc_offset(tz, wall - SECS_PER_DAY);
	off_after = cron_utc_offset(tz, wall + SECS_PER_DAY);
	t_before = wall - off_before;
	t_after = wall - off_after;
	ok_before = (cron_utc_offset(tz, t_before) == off_before);
	ok_after = (off_after != off_before &&
				cron_utc_offset(tz, t_after) == off_after);

	if (ok_before && ok_after)
	{
		out[0] = Min(t_before, t_after);
		out[1] = Max(t_before, t_after);
		return 2;
	}
	if (ok_after)
		out[0] = t_after;
	else
		out[0] = t_before;		/* unique, or skipped: see above */
	return 1;
}

/*
 * Find the earliest fire time of spec on local day jd (a Julian day number)
 * that is strictly after instant "after".  Returns false if there is none.
 */
static bool
cron_scan_day(const AwaCronSpec *spec, pg_tz *tz, int jd, pg_time_t after,
			  pg_time_t *result)
{
	pg_time_t	day_start = (pg_time_t) (jd - UNIX_EPOCH_JDATE) * SECS_PER_DAY;
	pg_time_t	probe = day_start - SECS_PER_DAY;
	long		off_before;
	long		off_after;
	int			dst_before;
	int			dst_after;
	pg_time_t	boundary;
	int			rc;
	int			h;
	int			m;
	bool		found = false;
	CronShift	shift;

	/*
	 * Every wall time of the day happens between a day before its start and
	 * two days after it (UTC offsets stay within -12h..+14h).  If the offset
	 * does not change in that window, wall time and real time differ by a
	 * constant and the first matching minute after the threshold is the
	 * answer.
	 */
	rc = pg_next_dst_boundary(&probe, &off_before, &dst_before, &boundary,
							  &off_after, &dst_after, tz);
	if (rc == 0 || (rc == 1 && boundary > day_start + 2 * SECS_PER_DAY))
	{
		pg_time_t	from = after + off_before - day_start + 1;
		int			h0;
		int			m0;

		if (from >= SECS_PER_DAY)
			return false;
		if (from < 0)
			from = 0;
		h0 = from / SECS_PER_HOUR;
		m0 = (from - h0 * SECS_PER_HOUR + SECS_PER_MINUTE - 1) / SECS_PER_MINUTE;
		if (m0 >= 60)
		{
			h0++;
			m0 = 0;
		}
		for (h = h0; h < 24; h++)
		{
			if (!(spec->hours & ((uint32) 1 << h)))
				continue;
			for (m = (h == h0 ? m0 : 0); m < 60; m++)
			{
				if (spec->minutes & (UINT64CONST(1) << m))
				{
					*result = day_start + h * SECS_PER_HOUR +
						m * SECS_PER_MINUTE - off_before;
					return true;
				}
			}
		}
		return false;
	}

	/*
	 * The offset changes near this day: map every matching wall time to its
	 * instants and keep the earliest one after the threshold.  Skipped times
	 * may move past later ones, so no early exit.  If this is the only
	 * change in the window, the mapping is plain arithmetic.
	 */
	shift.known = false;
	if (rc == 1)
	{
		pg_time_t	next_boundary;
		long		next_off_before;
		long		next_off_after;

		rc = pg_next_dst_boundary(&boundary, &next_off_before, &dst_before,
								  &next_boundary, &next_off_after, &dst_after,
								  tz);
		if (rc == 0 ||
			(rc == 1 && next_boundary > day_start + 2 * SECS_PER_DAY))
		{
			shift.known = true;
			shift.boundary = boundary;
			shift.off_before = off_before;
			shift.off_after = off_after;
		}
	}
	for (h = 0; h < 24; h++)
	{
		if (!(spec->hours & ((uint32) 1 << h)))
			continue;
		for (m = 0; m < 60; m++)
		{
			pg_time_t	inst[2];
			int			n;
			int			i;

			if (!(spec->minutes & (UINT64CONST(1) << m)))
				continue;
			n = cron_wall_to_instants(tz, &shift,
									  day_start + h * SECS_PER_HOUR +
									  m * SECS_PER_MINUTE,
									  inst);
			/* the second occurrence counts only for every-hour jobs */
			if (n == 2 && spec->hours != CRON_ALL_HOURS)
				n = 1;
			for (i = 0; i < n; i++)
			{
				if (inst[i] > after && (!found || inst[i] < *result))
				{
					*result = inst[i];
					found = true;
				}
			}
		}
	}
	return found;
}

/*
 * Does spec allow local day jd, the mday'th of its month?  Applies the
 * Vixie rule for day-of-month against day-of-week.
 */
static bool
cron_day_matches(const AwaCronSpec *spec, int jd, int mday)
{
	bool		dom = (spec->mdays & ((uint32) 1 << mday)) != 0;
	bool		dow = (spec->wdays & (1 << j2day(jd))) != 0;

	if (spec->mday_star || spec->wday_star)
		return dom && dow;
	return dom || dow;
}

/*
 * First fire time of spec strictly after "after" in time zone tzname, or
 * DT_NOEND if there is none within CRON_SEARCH_DAYS.  The rules for
 * daylight-saving transitions are in the comment at the top of this file.
 */
TimestampTz
awa_cron_next(const AwaCronSpec *spec, const char *tzname, TimestampTz after)
{
	pg_tz	   *tz = cron_lookup_timezone(tzname);
	pg_time_t	after_secs;
	pg_time_t	wall;
	pg_time_t	best = 0;
	bool		found = false;
	int			jd;
	int			jd_last;

	if (TIMESTAMP_IS_NOEND(after))
		return DT_NOEND;
	if (TIMESTAMP_IS_NOBEGIN(after))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot compute fire times after -infinity")));

	/* whole seconds, rounded down: fire times fall on whole minutes */
	after_secs = after / USECS_PER_SEC;
	if (after % USECS_PER_SEC < 0)
		after_secs--;
	after_secs += CRON_EPOCH_DIFF_SECS;

	/*
	 * Start a day early: near an offset change a wall time of the previous
	 * day can happen after "after".
	 */
	wall = after_secs + cron_utc_offset(tz, after_secs);
	jd = (int) (wall / SECS_PER_DAY - (wall % SECS_PER_DAY < 0 ? 1 : 0)) +
		UNIX_EPOCH_JDATE - 1;
	if (jd < 0)
		jd = 0;
	jd_last = jd + CRON_SEARCH_DAYS;

	while (jd <= jd_last)
	{
		int			year;
		int			month;
		int			mday;
		pg_time_t	candidate = 0;

		/*
		 * Wall times of this day and later happen no earlier than a day
		 * before its start, so once we are past that, the best so far wins.
		 */
		if (found &&
			(pg_time_t) (jd - UNIX_EPOCH_JDATE) * SECS_PER_DAY - SECS_PER_DAY > best)
			break;

		CHECK_FOR_INTERRUPTS();

		j2date(jd, &year, &month, &mday);
		if (!(spec->months & (1 << month)))
		{
			/* skip to the first day of the next month */
			jd = (month == 12) ? date2j(year + 1, 1, 1) :
				date2j(year, month + 1, 1);
			continue;
		}
		if (cron_day_matches(spec, jd, mday) &&
			cron_scan_day(spec, tz, jd, after_secs, &candidate) &&
			(!found || candidate < best))
		{
			best = candidate;
			found = true;
		}
		jd++;
	}

	if (!found ||
		best - CRON_EPOCH_DIFF_SECS >= END_TIMESTAMP / USECS_PER_SEC)
		return DT_NOEND;
	return time_t_to_timestamptz(best);
}

/*
 * awa_next_fire_times(cron text, timezone text, after timestamptz,
 * n integer) RETURNS SETOF timestamptz
 *
 * The next n fire times of a cron expression after a given instant, so
 * users can check a schedule before they create it.  Returns fewer rows if
 * the expression stops firing (see awa_cron_next).  Errors: 22023 for a bad
 * expression, an unknown time zone, or n outside 1..1000.
 */
Datum
awa_next_fire_times(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	CronFireState *state;

	if (SRF_IS_FIRSTCALL())
	{
		char	   *expr = text_to_cstring(PG_GETARG_TEXT_PP(0));
		char	   *tzname = text_to_cstring(PG_GETARG_TEXT_PP(1));
		TimestampTz after = PG_GETARG_TIMESTAMPTZ(2);
		int32		n = PG_GETARG_INT32(3);
		MemoryContext oldcontext;

		if (n < 1 || n > CRON_MAX_FIRE_TIMES)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("n must be between 1 and %d, got %d",
							CRON_MAX_FIRE_TIMES, n)));

		funcctx = SRF_FIRSTCALL_INIT();
		oldcontext = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);

		state = (CronFireState *) palloc0(sizeof(CronFireState));
		awa_cron_parse(expr, &state->spec);
		awa_cron_check_timezone(tzname);
		state->tzname = pstrdup(tzname);
		state->last = after;

		funcctx->max_calls = n;
		funcctx->user_fctx = state;
		MemoryContextSwitchTo(oldcontext);
	}

	funcctx = SRF_PERCALL_SETUP();
	state = (CronFireState *) funcctx->user_fctx;

	if (funcctx->call_cntr < funcctx->max_calls)
	{
		TimestampTz next = awa_cron_next(&state->spec, state->tzname,
										 state->last);

		if (!TIMESTAMP_IS_NOEND(next))
		{
			state->last = next;
			SRF_RETURN_NEXT(funcctx, TimestampTzGetDatum(next));
		}
	}
	SRF_RETURN_DONE(funcctx);
}
