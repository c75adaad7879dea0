/* cytest.c - the harness behind cytest.h. */
#include "cytest.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cy_atomic.h"

/* Failure messages printed per case; the rest are only counted. */
#define MAX_PRINTED 12

static _Atomic long failures;      /* of the running case */
static _Atomic long printed;       /* messages printed for it */
static double scale = 1.0;
static uint64_t seed;
static const char *volatile running_case = "(none)";
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

/* ----------------------------------------------------------------- checks */

void cytest_fail_at(const char *file, int line, const char *fmt, ...)
{
    atomic_fetch_add(&failures, 1);
    if (atomic_fetch_add(&printed, 1) >= MAX_PRINTED)
        return;
    const char *base = strrchr(file, '/');
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&out_mu);
    fprintf(stdout, "    FAILED %s:%d: ", base ? base + 1 : file, line);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&out_mu);
    va_end(ap);
}

void cytest_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&out_mu);
    fputs("    ", stdout);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&out_mu);
    va_end(ap);
}

long cytest_failures(void) { return atomic_load(&failures); }

/* ------------------------------------------------------------ parameters */

long cytest_n(long full)
{
    double v = (double)full * scale;
    return v < 1.0 ? 1 : (long)v;
}

double cytest_scale(void) { return scale; }
uint64_t cytest_seed(void) { return seed; }

/* ----------------------------------------------------------- time, random */

int64_t cytest_now_ns(void) { return cy_now_ns(); }

int64_t cytest_deadline(double seconds) { return cy_deadline_after((int64_t)(seconds * 1e9)); }

void cytest_sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void cytest_spin(unsigned spins)
{
    for (unsigned i = 0; i < spins; i++)
        cy_cpu_relax();
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void cytest_rng_init(cytest_rng *r, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull);
    r->s = splitmix(&x) | 1;
}

uint64_t cytest_rand(cytest_rng *r)
{
    /* xorshift64* */
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

uint64_t cytest_below(cytest_rng *r, uint64_t n) { return n ? (cytest_rand(r) >> 11) % n : 0; }

/* ---------------------------------------------------------------- threads */

struct par {
    void (*fn)(void *, int);
    void *ctx;
    int id;
    _Atomic int *ready;
    _Atomic int *go;
};

static void *par_main(void *p)
{
    struct par *a = p;
    atomic_fetch_add(a->ready, 1);
    while (!atomic_load(a->go))
        sched_yield();
    a->fn(a->ctx, a->id);
    return NULL;
}

int cytest_parallel(int n, void (*fn)(void *ctx, int id), void *ctx)
{
    pthread_t *t = calloc((size_t)n, sizeof *t);
    struct par *a = calloc((size_t)n, sizeof *a);
    _Atomic int ready = 0, go = 0;
    int started = 0;
    if (!t || !a) {
        cytest_fail_at(__FILE__, __LINE__, "out of memory");
        free(t);
        free(a);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        a[i] = (struct par){fn, ctx, i, &ready, &go};
        int rc = pthread_create(&t[i], NULL, par_main, &a[i]);
        if (rc != 0) {
            cytest_fail_at(__FILE__, __LINE__, "pthread_create: %s", strerror(rc));
            break;
        }
        started++;
    }
    while (atomic_load(&ready) < started)
        sched_yield();
    atomic_store(&go, 1);
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    free(t);
    free(a);
    return started;
}

void cytest_start(cytest_thread *th, void *(*fn)(void *), void *arg)
{
    int rc = pthread_create(&th->t, NULL, fn, arg);
    th->started = rc == 0;
    if (rc != 0)
        cytest_fail_at(__FILE__, __LINE__, "pthread_create: %s", strerror(rc));
}

void cytest_join(cytest_thread *th)
{
    if (th->started)
        pthread_join(th->t, NULL);
    th->started = 0;
}

int cytest_await_flag(_Atomic int *flag, double seconds)
{
    int64_t end = cytest_now_ns() + (int64_t)(seconds * 1e9);
    while (!atomic_load(flag)) {
        if (cytest_now_ns() > end)
            return 0;
        sched_yield();
    }
    return 1;
}

int cytest_await_at_least(_Atomic long *v, long target, double seconds)
{
    int64_t end = cytest_now_ns() + (int64_t)(seconds * 1e9);
    while (atomic_load(v) < target) {
        if (cytest_now_ns() > end)
            return 0;
        sched_yield();
    }
    return 1;
}

/* ---------------------------------------------------------------- signals */

static void on_sigusr1(int sig) { (void)sig; }

void cytest_install_sigusr1(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigusr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: an interrupted futex wait reports EINTR */
    sigaction(SIGUSR1, &sa, NULL);
}

void cytest_poke(pthread_t t) { pthread_kill(t, SIGUSR1); }

int cytest_in_child(void (*fn)(void))
{
    /* The child's output (a sanitizer report, say) comes back through a
     * pipe and is printed indented, as part of this case: run.sh looks for
     * sanitizer reports at the start of a line only, so an expected report
     * of a known bug in a child does not count as one of the binary's own. */
    int fd[2];
    fflush(stdout);
    fflush(stderr);
    if (pipe(fd) != 0) {
        cytest_fail_at(__FILE__, __LINE__, "pipe: %s", strerror(errno));
        return 0;
    }
    pid_t pid = fork();
    if (pid < 0) {
        cytest_fail_at(__FILE__, __LINE__, "fork: %s", strerror(errno));
        close(fd[0]);
        close(fd[1]);
        return 0;
    }
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[1]);
        atomic_store(&failures, 0);
        atomic_store(&printed, 0);
        fn();
        fflush(stdout);
        _exit(atomic_load(&failures) ? 1 : 0);
    }
    close(fd[1]);
    FILE *in = fdopen(fd[0], "r");
    char line[1024];
    while (in && fgets(line, sizeof line, in))
        cytest_note("child| %s", strtok(line, "\n") ? line : "");
    if (in)
        fclose(in);
    else
        close(fd[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 1;
    if (WIFSIGNALED(st))
        cytest_note("child died of signal %d", WTERMSIG(st));
    else
        cytest_note("child exited with status %d", WEXITSTATUS(st));
    return 0;
}

/* ---------------------------------------------------------------- watchdog */

static void on_alarm(int sig)
{
    (void)sig;
    static const char head[] = "\nWATCHDOG: still running after the time limit: ";
    const char *name = running_case;
    ssize_t rc = write(2, head, sizeof head - 1);
    rc = write(2, name, strlen(name));
    rc = write(2, "\n", 1);
    (void)rc;
    _exit(124);
}

/* -------------------------------------------------------------------- main */

static int matches(const char *name, int nfilters, char **filters)
{
    if (nfilters == 0)
        return 1;
    for (int i = 0; i < nfilters; i++)
        if (strstr(name, filters[i]))
            return 1;
    return 0;
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--quick] [--scale F] [--seed S] [--watchdog SEC] [--xfail-known] [--list] "
            "[filter...]\n",
            argv0);
    exit(2);
}

int cytest_main(int argc, char **argv, const char *suite, const cytest_case *cases, size_t ncases)
{
    const char *env;
    unsigned watchdog = 900;
    int xfail_known = 0, list = 0, nfilters = 0;
    char **filters = calloc((size_t)argc + 1, sizeof *filters);

    if ((env = getenv("CYTEST_SCALE")) && *env)
        scale = atof(env);
    if ((env = getenv("CYTEST_WATCHDOG")) && *env)
        watchdog = (unsigned)atoi(env);
    if ((env = getenv("CYTEST_XFAIL_KNOWN")) && *env && strcmp(env, "0") != 0)
        xfail_known = 1;
    seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    if ((env = getenv("CYTEST_SEED")) && *env)
        seed = strtoull(env, NULL, 0);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            scale = 0.1;
        else if (!strcmp(argv[i], "--scale") && i + 1 < argc)
            scale = atof(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--watchdog") && i + 1 < argc)
            watchdog = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--xfail-known"))
            xfail_known = 1;
        else if (!strcmp(argv[i], "--list"))
            list = 1;
        else if (argv[i][0] == '-')
            usage(argv[0]);
        else
            filters[nfilters++] = argv[i];
    }
    if (scale <= 0)
        scale = 1.0;
    if (list) {
        for (size_t i = 0; i < ncases; i++)
            printf("%s.%s%s\n", suite, cases[i].name, cases[i].known_bug ? "  (known bug)" : "");
        free(filters);
        return 0;
    }

    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGALRM, on_alarm);
    if (watchdog)
        alarm(watchdog);
    cytest_install_sigusr1();

    printf("== %s: park backend %s, scale %g, seed %#llx, watchdog %us\n", suite, cy_park_backend(),
           scale, (unsigned long long)seed, watchdog);
    int passed = 0, failed = 0, xfailed = 0;
    int64_t t_all = cytest_now_ns();
    for (size_t i = 0; i < ncases; i++) {
        const cytest_case *c = &cases[i];
        static char namebuf[256];
        snprintf(namebuf, sizeof namebuf, "%s.%s", suite, c->name);
        /* filters match the full name: "gate", "waitgroup.gate", "chan." */
        if (!matches(namebuf, nfilters, filters))
            continue;
        running_case = namebuf;
        atomic_store(&failures, 0);
        atomic_store(&printed, 0);
        printf("[ RUN  ] %s\n", namebuf);
        int64_t t0 = cytest_now_ns();
        c->fn();
        double ms = (double)(cytest_now_ns() - t0) / 1e6;
        long f = atomic_load(&failures);
        if (f == 0) {
            passed++;
            if (c->known_bug)
                printf("    note: the known bug this case demonstrates did not show (fixed?): %s\n",
                       c->known_bug);
            printf("[  OK  ] %s (%.0f ms)\n", namebuf, ms);
        } else if (c->known_bug && xfail_known) {
            xfailed++;
            printf("    known bug (xfail): %s\n", c->known_bug);
            printf("[ XFAIL] %s (%.0f ms, %ld failed checks)\n", namebuf, ms, f);
        } else {
            failed++;
            if (c->known_bug)
                printf("    known bug: %s\n", c->known_bug);
            printf("[ FAIL ] %s (%.0f ms, %ld failed checks)\n", namebuf, ms, f);
        }
    }
    running_case = "(teardown)";
    printf("== %s (%s): %.1f s\n", suite, cy_park_backend(), (double)(cytest_now_ns() - t_all) / 1e9);
    if (xfailed)
        printf("%d passed, %d failed, %d skipped\n", passed, failed, xfailed);
    else
        printf("%d passed, %d failed\n", passed, failed);
    free(filters);
    return failed ? 1 : 0;
}
