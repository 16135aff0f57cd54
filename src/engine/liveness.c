#include "engine/liveness.h"

#include <stdint.h>
#include <stdlib.h>

static int by_first_step(const void *pa, const void *pb)
{
    const cz_live_span *a = pa, *b = pb;
    if (a->first != b->first)
        return a->first < b->first ? -1 : 1;
    return a->last < b->last ? -1 : a->last > b->last;
}

static int by_offset(const void *pa, const void *pb)
{
    const cz_live_span *a = *(cz_live_span *const *)pa, *b = *(cz_live_span *const *)pb;
    return a->offset < b->offset ? -1 : a->offset > b->offset;
}

size_t cz_place_by_liveness(cz_live_span *spans, int n)
{
    qsort(spans, (size_t)n, sizeof *spans, by_first_step);
    cz_live_span **live = malloc((size_t)(n ? n : 1) * sizeof *live);
    if (!live)
        return SIZE_MAX;
    size_t total = 0;
    for (int k = 0; k < n; k++) {
        cz_live_span *s = &spans[k];
        /* The ones already placed that are live with it, by address. */
        int n_live = 0;
        for (int j = 0; j < k; j++)
            if (spans[j].first <= s->last && s->first <= spans[j].last)
                live[n_live++] = &spans[j];
        qsort(live, (size_t)n_live, sizeof *live, by_offset);
        /* The first gap it fits in. */
        size_t at = 0;
        for (int j = 0; j < n_live && live[j]->offset < at + s->size; j++)
            if (live[j]->offset + live[j]->size > at)
                at = live[j]->offset + live[j]->size;
        s->offset = at;
        if (at + s->size > total)
            total = at + s->size;
    }
    free(live);
    return total;
}
