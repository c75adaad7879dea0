/* macos_shim.h - for run.sh's syntax check of cy_park.c's macOS branches on
 * Linux (gcc -U__linux__ -D__APPLE__ -fsyntax-only -include macos_shim.h):
 * declares the one Darwin libc function those branches call that glibc lacks. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* as cy_park.c asks, before any system header */
#endif
#include <pthread.h>
#include <time.h>
int pthread_cond_timedwait_relative_np(pthread_cond_t *cond, pthread_mutex_t *mutex, const struct timespec *reltime);
