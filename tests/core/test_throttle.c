/* test_throttle.c - the minute windows behind rpm and tpm (core/throttle.c),
 * on a simulated clock: a window takes its whole limit at once, never holds
 * more than the limit in any 60 s, says how long until there is room, and
 * lets that moment through; a call larger than the limit goes alone. */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "throttle.h"

#define MIN_MS 60000u

/* Sends whenever the window has room, at random moments over `span` ms;
 * returns how many went, and checks every 60 s span of the sends. */
static int simulate(double limit, uint64_t span, unsigned seed) {
    static uint64_t at[100000];
    sl_window w;
    sl_window_init(&w, limit, 1000000);
    srand(seed);
    int n = 0;
    for (uint64_t now = 1000000; now < 1000000 + span && n < 100000; now += (uint64_t)(rand() % 400)) {
        uint64_t wait = sl_window_wait_ms(&w, now, 1);
        if (wait) continue;
        sl_window_add(&w, now, 1);
        at[n++] = now;
    }
    /* the most sends in any 60 s: a send and the ones within 60 s after it */
    int worst = 0;
    for (int i = 0, j = 0; i < n; i++) {
        while (j < n && at[j] < at[i] + MIN_MS) j++;
        if (j - i > worst) worst = j - i;
    }
    CHECK(worst <= (int)limit);
    return n;
}

int main(void) {
    sl_window w;
    uint64_t t0 = 5000000;

    /* the whole limit at once, then a wait of a minute and a bit */
    sl_window_init(&w, 30, t0);
    for (int i = 0; i < 30; i++) {
        CHECK_INT(sl_window_wait_ms(&w, t0, 1), 0);
        sl_window_add(&w, t0, 1);
    }
    uint64_t wait = sl_window_wait_ms(&w, t0, 1);
    CHECK(wait >= 60250 && wait <= 60500);
    CHECK(sl_window_wait_ms(&w, t0 + wait - 1, 1) > 0);
    CHECK_INT(sl_window_wait_ms(&w, t0 + wait, 1), 0);

    /* sends spread out leave one by one: room comes back a minute after each */
    sl_window_init(&w, 3, t0);
    sl_window_add(&w, t0, 1);
    sl_window_add(&w, t0 + 10000, 1);
    sl_window_add(&w, t0 + 20000, 1);
    wait = sl_window_wait_ms(&w, t0 + 30000, 1);
    CHECK(t0 + 30000 + wait >= t0 + MIN_MS + 250 && t0 + 30000 + wait <= t0 + MIN_MS + 500);
    CHECK_INT(sl_window_wait_ms(&w, t0 + 30000 + wait, 1), 0);
    CHECK(sl_window_wait_ms(&w, t0 + 30000 + wait, 2) > 0); /* the second leaves 10 s later */

    /* a need above the limit fits an empty window only */
    sl_window_init(&w, 1000, t0);
    CHECK_INT(sl_window_wait_ms(&w, t0, 5000), 0);
    sl_window_add(&w, t0, 1000);
    CHECK(sl_window_wait_ms(&w, t0 + 1000, 5000) > 0);
    CHECK_INT(sl_window_wait_ms(&w, t0 + MIN_MS + 1000, 5000), 0);

    /* a refund (usage below the estimate) makes room at once */
    sl_window_init(&w, 100, t0);
    sl_window_add(&w, t0, 100);
    CHECK(sl_window_wait_ms(&w, t0 + 10, 40) > 0);
    sl_window_add(&w, t0 + 10, -60);
    CHECK_INT(sl_window_wait_ms(&w, t0 + 10, 40), 0);
    CHECK(sl_window_wait_ms(&w, t0 + 10, 61) > 0);

    /* no limit: never a wait */
    sl_window_init(&w, 0, t0);
    sl_window_add(&w, t0, 1e9);
    CHECK_INT(sl_window_wait_ms(&w, t0, 1e9), 0);

    /* random arrivals over ten minutes: never more than the limit in any
     * 60 s, and close to the limit per minute when there is demand */
    for (unsigned seed = 1; seed <= 5; seed++) {
        int sent = simulate(50, 10 * MIN_MS, seed);
        CHECK(sent >= 9 * 50);
        CHECK(sent <= 10 * 50);
    }
    simulate(1, 5 * MIN_MS, 9);
    return check_done();
}
