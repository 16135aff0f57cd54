/* Adam, as torch.optim.Adam (weight decay is PyTorch's coupled L2 term, added
 * to the gradient), over a graph's flat parameter store: one fused pass over
 * the trainable prefix, moments at the same offsets as the parameters. */
#ifndef CZ_OPTIM_ADAM_H
#define CZ_OPTIM_ADAM_H

#include <stddef.h>
#include <stdint.h>

#include "engine/graph.h"

typedef struct {
    float lr;           /* learning rate (pix2pix: 2e-4) */
    float beta1, beta2; /* moment decay rates (pix2pix: 0.5, 0.999) */
    float eps;          /* added to the denominator (PyTorch: 1e-8) */
    float weight_decay; /* L2 coefficient added to the gradient */
} cz_adam_config;

typedef struct cz_adam cz_adam;

/* An optimiser for n parameters (a graph's cz_graph_params()->n_trainable). */
cz_adam *cz_adam_create(const cz_adam_config *config, size_t n);
void cz_adam_free(cz_adam *adam);

/* One update of g's trainable parameters from their accumulated gradients. */
cz_status cz_adam_step(cz_adam *adam, cz_graph *g);

/* The learning rate can change between steps (decay schedules). */
void cz_adam_set_lr(cz_adam *adam, float lr);

/* Everything needed to continue exactly: both moments and the step count.
 * m and v have n values each; they may be written to restore a checkpoint. */
typedef struct {
    float *m, *v;
    size_t n;
    int64_t step;
} cz_adam_state;
cz_adam_state *cz_adam_state_of(cz_adam *adam);

#endif
