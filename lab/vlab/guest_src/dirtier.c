/* dirtier: keep a working set of memory dirty, for guests that are hard to migrate.
 *
 *   dirtier WORKING_SET_MIB [RATE_MIBPS]
 *
 * Rewrites every 4 KiB page of the working set in full, round after round, the way
 * a busy database or cache rewrites its pages. RATE_MIBPS > 0 is a ceiling on the bytes
 * written per second; a guest slowed down (e.g. throttled by auto-converge) does not
 * "catch up" afterwards, like a real service that serves what it can. 0 or absent
 * dirties as fast as the vCPU allows.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAGE 4096UL

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: dirtier WORKING_SET_MIB [RATE_MIBPS]\n");
        return 2;
    }
    size_t size = (size_t)strtoul(argv[1], NULL, 10) << 20;
    double rate = argc > 2 ? strtod(argv[2], NULL) : 0.0;
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
