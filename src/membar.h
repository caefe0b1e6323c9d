/*
 * membar: an asymmetric fence (internal).
 *
 * Work stealing needs a store-load fence between an owner's "this task is
 * mine" and its read of how far thieves have come, and another between a
 * thief's claim and its read of the owner's progress (Dekker's pattern).
 * On the owner that fence would be paid per task; thieves are rare. So the
 * owner uses a light fence (a compiler barrier) and a thief a heavy one:
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), which runs a full barrier
 * on every CPU that runs a thread of this process before it returns. Each
 * light fence of the owner then is either before that barrier (what it
 * stored is visible to the thief) or after it (what it loads sees the
 * thief's store). Folly's asymmetricLightBarrier/HeavyBarrier, the Linux
 * kernel's sys_membarrier(2) rationale.
 *
 * Where the system call is missing or refused (old kernels, seccomp,
 * valgrind), or with WPOOL_MEMBARRIER=0 in the environment (to test that
 * path), both sides use a seq_cst fence: correct, the owner pays per task.
 * The choice is made once per process, at the first pool's create.
 */
#ifndef WP_MEMBAR_H
#define WP_MEMBAR_H

#include <stdatomic.h>
#include <stdbool.h>

/* Sets up the heavy fence (once per process; later calls only read the
   result). true: light fences may be compiler barriers. */
bool wp__membar_setup(void);

/* The thief's side. light: what wp__membar_setup returned. */
void wp__membar_heavy(bool light);

/* The owner's side. */
static inline void wp__membar_light(bool light)
{
    if (light)
        atomic_signal_fence(memory_order_seq_cst); /* the compiler's order only */
    else
        atomic_thread_fence(memory_order_seq_cst);
}

#endif
