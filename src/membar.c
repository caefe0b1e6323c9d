/*
 * membar: the heavy side of the asymmetric fence (see membar.h).
 */
#include "membar.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__linux__)
#include <linux/membarrier.h> /* an enum: the commands are no macros */
#include <sys/syscall.h>
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool usable; /* written once, in setup */

#if defined(__linux__) && defined(__NR_membarrier)
static long membarrier(int cmd)
{
    return syscall(__NR_membarrier, cmd, 0, 0);
}
#endif

static void setup(void)
{
    const char *env = getenv("WPOOL_MEMBARRIER");
    if (env && strcmp(env, "0") == 0) return;
#if defined(__linux__) && defined(__NR_membarrier)
    long cmds = membarrier(MEMBARRIER_CMD_QUERY);
    if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED)) return;
    /* Registration is per process and inherited by fork()'s children. */
    if (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0) return;
    /* One call to be sure it works here (a sandbox may refuse it). */
    usable = membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0;
#endif
}

bool wp__membar_setup(void)
{
    pthread_once(&once, setup);
    return usable;
}

void wp__membar_heavy(bool light)
{
#if defined(__linux__) && defined(__NR_membarrier)
    if (light) {
        /* Our own store first, in program order; then the barrier on every
           other CPU running our threads. It cannot fail once registered;
           if it ever did, the fence below is no substitute (the owner's side
           has none), so abort rather than run a task twice. */
        atomic_thread_fence(memory_order_seq_cst);
        if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0) abort();
        return;
    }
#else
    (void)light;
#endif
    atomic_thread_fence(memory_order_seq_cst);
}
