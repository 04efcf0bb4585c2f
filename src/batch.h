/*-------------------------------------------------------------------------
 *
 * batch.h
 *		Batches of jobs written one statement per job (batch.c): the
 *		ring's awa_insert_many, INSERT and COPY into its view awa.jobs.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWA_BATCH_H
#define AWA_BATCH_H

/*
 * Between awa_batch_begin and awa_batch_end (in the same subtransaction,
 * nested as calls are) the ring's counting trigger keeps its sums as the
 * transaction's notes instead of writing them (counters.c, "Batches");
 * the end of the outermost batch calls awa_batch_end_hook (counters.c:
 * write the notes).  A batch opened in a subtransaction that aborts ends
 * with it; one still open at commit fails the commit (XX000).
 */
extern void awa_batch_begin(void);
extern void awa_batch_end(void);
extern bool awa_batch_active(void);

/* the subtransaction the innermost open batch was opened in (Invalid: none) */
extern SubTransactionId awa_batch_innermost_subxact(void);
extern void (*awa_batch_end_hook) (void);

#endif							/* AWA_BATCH_H */
