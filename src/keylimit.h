/*-------------------------------------------------------------------------
 *
 * keylimit.h
 *		Per-key concurrency and ordering at claim time (keylimit.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_KEYLIMIT_H
#define AWA_KEYLIMIT_H

/* Largest max_running of a key rule (awa.key_limits). */
#define AWA_MAX_KEY_LIMIT		1000000

/*
 * The rule (max_running, ordered) of the jobs of kind KIND with key KEY
 * (SQL expressions): one for the kind before one for every kind, then an
 * exact key (no % or _) before a pattern, then the longest pattern, then
 * the smallest.  No row: none matches (limit 1).
 */
#define AWA_KEY_RULE_SQL(KEY, KIND) \
	"SELECT l.max_running, l.ordered FROM awa.key_limits l" \
	" WHERE " KEY " LIKE l.pattern AND (l.kind IS NULL OR l.kind = " KIND ")" \
	" ORDER BY l.kind IS NULL, strpos(l.pattern, '%') > 0 OR strpos(l.pattern, '_') > 0," \
	" length(l.pattern) DESC, l.pattern LIMIT 1"

extern void awa_keylimit_begin(void);
extern bool awa_keylimit_end(void);

#endif							/* AWA_KEYLIMIT_H */
