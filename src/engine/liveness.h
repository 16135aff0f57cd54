/* Memory shared by liveness: tensors that are never needed at the same
 * time may lie at the same place. Each tensor is a span of steps
 * [first, last] (node indices, ends included) and a size; placement is
 * first fit, in order of first step, each at the lowest offset where it
 * meets no span it overlaps in time. */
#ifndef CZ_ENGINE_LIVENESS_H
#define CZ_ENGINE_LIVENESS_H

#include <stddef.h>

typedef struct {
    int first, last; /* the steps it is live, ends included */
    size_t size;     /* in any unit, kept aligned by the caller */
    size_t offset;   /* set by cz_place_by_liveness */
    void *owner;     /* the caller's, untouched */
} cz_live_span;

/* Sets every span's offset (reordering the array) and returns the size of
 * the memory they need together; SIZE_MAX when out of memory. */
size_t cz_place_by_liveness(cz_live_span *spans, int n);

#endif
