/* cy_atomic.h - the atomics and the CPU hint every cysync primitive uses.
 *
 * C11 <stdatomic.h> only: gcc/clang everywhere, MSVC 17.5+ with
 * /experimental:c11atomics (setup.py passes it).  No Python here.
 */
#ifndef CY_ATOMIC_H
#define CY_ATOMIC_H

#include <stdatomic.h>
#include <stdint.h>

#define CY_RELAXED memory_order_relaxed
#define CY_ACQUIRE memory_order_acquire
#define CY_RELEASE memory_order_release
#define CY_ACQ_REL memory_order_acq_rel
#define CY_SEQ_CST memory_order_seq_cst

/* How many times a blocked caller re-checks before it parks.  A hand-off
 * between two threads usually completes within a few hundred nanoseconds, so
 * a short spin saves a futex round trip; a long one burns the core the other
 * thread needs (this runs on 2-core machines too). */
#ifndef CY_SPIN
#define CY_SPIN 64
#endif

static inline void cy_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield");
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
    _mm_pause();
#elif defined(_MSC_VER) && defined(_M_ARM64)
    __yield();
#endif
}

#endif /* CY_ATOMIC_H */
