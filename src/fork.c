/*
 * fork: the list of live pools, and what fork() does to them (see fork.h).
 */
#include "fork.h"

#include <pthread.h>
#include <stddef.h>

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static wp__fork_node reg_head = {&reg_head, &reg_head, NULL}; /* protected by reg_lock */
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;
static int reg_err; /* written once, in reg_setup */

static void before_fork(void)
{
    pthread_mutex_lock(&reg_lock);
}

static void in_parent(void)
{
    pthread_mutex_unlock(&reg_lock);
}

/* The child has one thread, the one that forked, which holds reg_lock. */
static void in_child(void)
{
    for (wp__fork_node *n = reg_head.next; n != &reg_head; n = n->next) n->child(n);
    pthread_mutex_unlock(&reg_lock);
}

static void reg_setup(void)
{
    reg_err = pthread_atfork(before_fork, in_parent, in_child);
}

int wp__fork_track(wp__fork_node *node)
{
    pthread_once(&reg_once, reg_setup);
    if (reg_err) return reg_err;
    pthread_mutex_lock(&reg_lock);
    node->prev = reg_head.prev;
    node->next = &reg_head;
    reg_head.prev->next = node;
    reg_head.prev = node;
    pthread_mutex_unlock(&reg_lock);
    return 0;
}

void wp__fork_untrack(wp__fork_node *node)
{
    pthread_mutex_lock(&reg_lock);
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = node;
    pthread_mutex_unlock(&reg_lock);
}
