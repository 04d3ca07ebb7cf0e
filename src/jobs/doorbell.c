/*
 * The doorbell: a page of counters in a file shared (mmap) by every process of one data
 * dir. Ringing bumps a queue's counter and the sequence word and wakes the futex waiters
 * on it; a worker compares counters to see whether its queues or a cancellation rang.
 * A lost ring costs latency only: workers also wake at their next known due time.
 */
#include "jobs/jobs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define DOORBELL_SIZE 4096

/** The shared page. */
struct doorbell {
    _Atomic uint32_t seq;                 /* the futex word: bumped by every ring */
    _Atomic uint32_t queue[JOBS_Q_COUNT]; /* per-queue rings */
    _Atomic uint32_t cancel;              /* cancellation rings */
};

static struct doorbell *bell;

int jobs_doorbell_open(const char *run_dir, struct err *err)
{
    char path[1024];
    void *p;
    int fd;

    if (bell)
        return 0;
    if (mkdir(run_dir, 0700) < 0 && errno != EEXIST)
        return err_errno(err, ERR_IO, "cannot create %s", run_dir);
    snprintf(path, sizeof(path), "%s/doorbell", run_dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return err_errno(err, ERR_IO, "cannot open %s", path);
    if (ftruncate(fd, DOORBELL_SIZE) < 0) {
        err_errno(err, ERR_IO, "cannot size %s", path);
        close(fd);
        return -1;
    }
    p = mmap(NULL, DOORBELL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return err_errno(err, ERR_IO, "cannot map %s", path);
    bell = p;
    return 0;
}

static long futex(_Atomic uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
    return syscall(SYS_futex, (uint32_t *)addr, op, val, ts, NULL, 0);
}

void jobs_doorbell_ring(enum jobs_queue q)
{
    if (!bell)
        return;
    if ((int)q >= 0 && q < JOBS_Q_COUNT)
        atomic_fetch_add(&bell->queue[q], 1);
    else
        atomic_fetch_add(&bell->cancel, 1);
    atomic_fetch_add(&bell->seq, 1);
    futex(&bell->seq, FUTEX_WAKE, INT_MAX, NULL);
}

int jobs__doorbell_read(struct jobs__bells *out)
{
    if (!bell)
        return -1;
    out->seq = atomic_load(&bell->seq);
    for (int i = 0; i < JOBS_Q_COUNT; i++)
        out->queue[i] = atomic_load(&bell->queue[i]);
    out->cancel = atomic_load(&bell->cancel);
    return 0;
}

void jobs__doorbell_wait(uint32_t seen, int64_t timeout_ms)
{
    struct timespec ts;

    if (!bell) {
        ts.tv_sec = (time_t)(timeout_ms / 1000);
        ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
        nanosleep(&ts, NULL);
        return;
    }
    ts.tv_sec = (time_t)(timeout_ms / 1000);
    ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
    futex(&bell->seq, FUTEX_WAIT, seen, &ts);
}
