/* dirtier: keep a working set of memory dirty, for guests that are hard to migrate.
 *
 *   dirtier WORKING_SET_MIB [RATE_MIBPS [AFTER_S LATER_RATE_MIBPS]]
 *   dirtier --fill MIB
 *
 * Rewrites every 4 KiB page of the working set in full, round after round, the way
 * a busy database or cache rewrites its pages. RATE_MIBPS > 0 is a ceiling on the bytes
 * written per second; a guest slowed down (e.g. throttled by auto-converge) does not
 * "catch up" afterwards, like a real service that serves what it can. 0 or absent
 * dirties as fast as the vCPU allows. AFTER_S LATER_RATE_MIBPS: a load that changes, e.g. a
 * quiet guest whose batch job starts AFTER_S seconds after the dirtier (a migration that was
 * predicted from the quiet phase meets the busy one).
 *
 * --fill writes MIB of memory once, every page with its own non-zero contents, then keeps it
 * and sleeps: a guest whose memory is really used (a loaded cache, a warmed-up application)
 * but idle, so a migration has to move those bytes (QEMU skips pages that are all zeroes) and
 * nothing more. It returns once the memory is written, leaving a child process that holds it
 * (so the guest's init can wait for the fill before its first heartbeat).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int fill(size_t size)
{
    uint8_t *mem = malloc(size);
    if (!mem || size == 0) {
        fprintf(stderr, "dirtier: cannot allocate %zu bytes\n", size);
        return 1;
    }
    /* A different byte pattern per page (a xorshift stream): no page is zero, none is a copy
     * of its neighbour, so neither zero-page detection nor compression makes the move cheaper
     * than the bytes a real application would have there. */
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t off = 0; off < size; off += sizeof(uint64_t)) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(mem + off, &x, sizeof(x));
    }
    pid_t holder = fork(); /* the child inherits the written pages and keeps them */
    if (holder < 0) {
        perror("dirtier: fork");
        return 1;
    }
    if (holder > 0)
        return 0;
    for (;;)
        pause(); /* keep the memory, touch nothing */
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--fill") == 0)
        return fill((size_t)strtoul(argv[2], NULL, 10) << 20);
    if (argc < 2) {
        fprintf(stderr, "usage: dirtier WORKING_SET_MIB [RATE_MIBPS [AFTER_S LATER_RATE_MIBPS]] | dirtier --fill MIB\n");
        return 2;
    }
    size_t size = (size_t)strtoul(argv[1], NULL, 10) << 20;
    double rate = argc > 2 ? strtod(argv[2], NULL) : 0.0;
    double change_at = argc > 4 ? now() + strtod(argv[3], NULL) : 0.0;
    double later_rate = argc > 4 ? strtod(argv[4], NULL) : rate;
    volatile uint8_t *mem = malloc(size);
    if (!mem || size == 0) {
        fprintf(stderr, "dirtier: cannot allocate %zu bytes\n", size);
        return 1;
    }
    const size_t pages = size / PAGE;
    const size_t chunk = 256; /* pages between rate checks: 1 MiB */
    uint8_t round = 0;
    double start = now();
    uint64_t dirtied = 0;
    for (;;) {
        round++;
        for (size_t p = 0; p < pages; p++) {
            memset((uint8_t *)mem + p * PAGE, round + (uint8_t)p, PAGE);
            if (change_at > 0 && dirtied % chunk == 0 && now() >= change_at) {
                rate = later_rate; /* the load changes once; the schedule starts again */
                change_at = 0;
                start = now();
                dirtied = 0;
            }
            if (++dirtied % chunk == 0 && rate > 0) {
                /* Sleep until the bytes written since `start` match the rate; when we are
                 * behind (throttled), restart the schedule instead of catching up. */
                double due = start + (double)dirtied * PAGE / (rate * 1048576.0);
                double wait = due - now();
                if (wait > 0) {
                    struct timespec ts = { (time_t)wait, (long)((wait - (time_t)wait) * 1e9) };
                    nanosleep(&ts, NULL);
                } else {
                    start = now();
                    dirtied = 0;
                }
            }
        }
    }
}
