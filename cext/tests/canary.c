/* canary.c - planted bugs that the sanitizer builds must catch; run.sh runs
 * it in the tsan and asan configurations and expects it to fail with a
 * report, which proves the sanitizers and their options (halt on error, exit
 * code) are really in force for the test binaries built the same way.
 *
 *   canary race       two threads write one plain int      (ThreadSanitizer)
 *   canary overflow   reads one byte past a heap block     (AddressSanitizer)
 *   canary ub         signed integer overflow              (UBSan)
 */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int shared;

static void *writer(void *p)
{
    (void)p;
    for (int i = 0; i < 100000; i++)
        shared++;
    return NULL;
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "";
    if (!strcmp(what, "race")) {
        pthread_t a, b;
        pthread_create(&a, NULL, writer, NULL);
        pthread_create(&b, NULL, writer, NULL);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        printf("shared = %d\n", shared);
    } else if (!strcmp(what, "overflow")) {
        volatile char *p = malloc(16);
        int i = argc + 14; /* 16 */
        printf("%d\n", p[i]);
        free((void *)p);
    } else if (!strcmp(what, "ub")) {
        volatile int x = INT_MAX;
        x = x + argc;
        printf("%d\n", x);
    } else {
        fprintf(stderr, "usage: canary race|overflow|ub\n");
        return 2;
    }
    printf("canary: not caught\n");
    return 0;
}
