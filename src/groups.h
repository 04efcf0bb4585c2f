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
extern void awa_group_callback_args(FunctionCallInfo fcinfo, text *group_id, Datum *values);

#endif							/* AWA_GROUPS_H */
