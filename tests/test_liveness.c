/* cz_place_by_liveness: spans live at the same time never share memory,
 * spans that are not reuse it, and first fit fills the gaps left. Checked
 * on hand-made cases and on random ones against a brute-force overlap
 * test. */
#include <stdbool.h>
#include <stdint.h>

#include "base/rng.h"
#include "check.h"
#include "engine/liveness.h"

/* Offsets by owner (spans come back reordered). */
static size_t offset_of(const cz_live_span *spans, int n, int owner)
{
    for (int i = 0; i < n; i++)
        if ((intptr_t)spans[i].owner == owner)
            return spans[i].offset;
    return SIZE_MAX;
}

static void test_cases(void)
{
    /* A chain: each step's input and output live together, nothing else. */
    cz_live_span chain[6];
    for (int i = 0; i < 6; i++)
        chain[i] = (cz_live_span){.first = i, .last = i + 1, .size = 10, .owner = (void *)(intptr_t)i};
    CHECK(cz_place_by_liveness(chain, 6) == 20, "a chain needs two buffers");
    for (int i = 0; i < 6; i++)
        CHECK(offset_of(chain, 6, i) == (size_t)(i % 2) * 10, "chain link %d at %zu", i,
              offset_of(chain, 6, i));

    /* All live at once: end to end. */
    cz_live_span all[3] = {{0, 5, 4, 0, (void *)0}, {1, 5, 8, 0, (void *)1}, {2, 3, 16, 0, (void *)2}};
    CHECK(cz_place_by_liveness(all, 3) == 28, "three live together need 28");

    /* A gap: a (0-9, size 4) and c (0-9, size 4) around b (0-1, size 4);
     * d (5-6, size 4) fits where b was. */
    cz_live_span gap[4] = {{0, 9, 4, 0, (void *)0}, {0, 1, 4, 0, (void *)1},
                           {0, 9, 4, 0, (void *)2}, {5, 6, 4, 0, (void *)3}};
    CHECK(cz_place_by_liveness(gap, 4) == 12, "the gap is reused");
    CHECK(offset_of(gap, 4, 3) == offset_of(gap, 4, 1), "d goes where b was");

    /* Ends count: spans touching at one step are live together. */
    cz_live_span touch[2] = {{0, 3, 5, 0, (void *)0}, {3, 6, 5, 0, (void *)1}};
    CHECK(cz_place_by_liveness(touch, 2) == 10, "spans sharing a step must not share memory");
    CHECK(cz_place_by_liveness(touch, 0) == 0, "nothing needs nothing");
}

static void test_random(void)
{
    cz_rng rng;
    cz_rng_seed(&rng, 9);
    enum { N = 200 };
    static cz_live_span spans[N];
    for (int round = 0; round < 20; round++) {
        size_t sum = 0;
        for (int i = 0; i < N; i++) {
            int first = (int)cz_rng_below(&rng, 100);
            spans[i] = (cz_live_span){.first = first, .last = first + (int)cz_rng_below(&rng, 20),
                                      .size = 1 + cz_rng_below(&rng, 50), .owner = (void *)(intptr_t)i};
            sum += spans[i].size;
        }
        size_t total = cz_place_by_liveness(spans, N);
        int clashes = 0, outside = 0;
        for (int i = 0; i < N; i++) {
            outside += spans[i].offset + spans[i].size > total;
            for (int j = i + 1; j < N; j++) {
                bool together = spans[i].first <= spans[j].last && spans[j].first <= spans[i].last;
                bool overlap = spans[i].offset < spans[j].offset + spans[j].size &&
                               spans[j].offset < spans[i].offset + spans[i].size;
                clashes += together && overlap;
            }
        }
        CHECK(clashes == 0 && outside == 0, "round %d: %d clashes, %d outside the total", round, clashes,
              outside);
        CHECK(total < sum / 2, "round %d: %zu of %zu, little reuse", round, total, sum);
    }
}

int main(void)
{
    test_cases();
    test_random();
    return check_finish("test_liveness");
}
