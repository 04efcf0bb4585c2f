/*-------------------------------------------------------------------------
 *
 * groups.h
 *		Groups of jobs and their finish callbacks (groups.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_GROUPS_H
#define AWA_GROUPS_H

#include "commands/trigger.h"

extern void awa_groups_changes(TriggerData *td);

#endif							/* AWA_GROUPS_H */
