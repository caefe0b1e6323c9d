/*
 * fork: which pools a child process inherited (internal).
 *
 * Every live pool is on one list (a node inside the pool), guarded by one
 * mutex that only create and destroy take, so the per-task paths pay
 * nothing. A pthread_atfork handler holds the mutex across fork(), so the
 * list is consistent in the child, and there calls each node's `child`
 * callback: the pool marks itself inherited and closes its ring (pool.c),
 * so that its fast paths fail by themselves and its slow paths return
 * EOWNERDEAD. Pools created in the child are new nodes and work as usual.
 */
#ifndef WP_FORK_H
#define WP_FORK_H

typedef struct wp__fork_node {
    struct wp__fork_node *prev, *next;         /* protected by the registry's mutex */
    void (*child)(struct wp__fork_node *node); /* in the child, once, before fork returns */
} wp__fork_node;

/* Puts node on the list (registering the atfork handlers on first use).
   0, or the error of pthread_atfork. */
int wp__fork_track(wp__fork_node *node);
/* Takes node off the list. */
void wp__fork_untrack(wp__fork_node *node);

#endif
