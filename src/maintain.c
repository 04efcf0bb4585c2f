/*-------------------------------------------------------------------------
 *
 * maintain.c
 *		Maintenance: awa_maintain(), the background worker, retention and
 *		periodic jobs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "awa.h"

/* Settings and background worker registration, called from _PG_init. */
void
awa_maintain_init(void)
{
}
