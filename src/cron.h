/*-------------------------------------------------------------------------
 *
 * cron.h
 *		Cron expressions: parsing and time-zone-aware next fire times.
 *
 * Callers must include postgres.h and utils/timestamp.h first.
 * See the comment at the top of cron.c for the syntax and the rules for
 * daylight-saving transitions.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_CRON_H
#define AWA_CRON_H

/* A parsed five-field cron expression. */
typedef struct AwaCronSpec
{
	uint64		minutes;		/* bit i set = minute i (0..59) */
	uint32		hours;			/* bit h set = hour h (0..23) */
	uint32		mdays;			/* bit d = day of month d (1..31) */
	uint16		months;			/* bit m = month m (1..12) */
	uint8		wdays;			/* bit w = weekday w (0 = Sunday .. 6); 7 in
								 * input is stored as bit 0 */
	bool		mday_star;		/* day-of-month field was '*' (or a step
								 * over *) */
	bool		wday_star;		/* day-of-week field was '*' (or a step over
								 * *) */
} AwaCronSpec;

/*
 * Parse expr into *spec.  A bad expression raises ERROR with SQLSTATE 22023
 * (invalid_parameter_value) and a message naming the bad field and its text.
 */
extern void awa_cron_parse(const char *expr, AwaCronSpec *spec);

/*
 * First fire time strictly after "after", with the wall clock of time zone
 * tzname (an IANA name such as 'Europe/Berlin' or 'UTC').  Returns DT_NOEND
 * when the expression never fires within ten years of "after" (such as
 * February 30) or when "after" is +infinity.  Raises 22023 for an unknown
 * time zone or an "after" of -infinity, and 22008 if the zone's rules cannot
 * be evaluated at that date.
 */
extern TimestampTz awa_cron_next(const AwaCronSpec *spec, const char *tzname,
								 TimestampTz after);

/* Raise 22023 unless tzname names a time zone awa_cron_next accepts. */
extern void awa_cron_check_timezone(const char *tzname);

#endif							/* AWA_CRON_H */
