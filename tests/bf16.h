/* bf16 checks need oneDNN's bf16 kernels, and those need AVX-512: on a
 * CPU without it (AVX2 only) a bf16 graph is refused when planned. There
 * the bf16 checks are skipped and the log says so once; the fp32 checks
 * run everywhere. */
#ifndef CZ_TESTS_BF16_H
#define CZ_TESTS_BF16_H

#include <stdbool.h>
#include <stdio.h>

#include "engine/onednn.h"

static inline bool bf16_runs(void)
{
    static bool said;
    bool runs = cz_dnnl_has_bf16_kernels();
    if (!runs && !said) {
        said = true;
        printf("bf16 checks skipped: this CPU has no AVX-512, so oneDNN has no bf16 kernels\n");
    }
    return runs;
}

#endif
