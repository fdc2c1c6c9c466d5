/* Optimizer steps and learning-rate schedules, with PyTorch's semantics
 * (see WORKLOADS.md): SGD (momentum, dampening, nesterov, weight decay added
 * to the gradient), Adam, AdamW (decoupled decay), RMSprop (with momentum),
 * and SAM around any of them. Parameters are one flat array, so one call
 * updates the whole model. */
#ifndef NR_OPTIM_H
#define NR_OPTIM_H
#include "netrt.h"
#include <stddef.h>

/* Floats of optimizer state for n parameters (SGD without momentum: 0).
 * Layout: SGD the momentum buffer; Adam/AdamW exp_avg then exp_avg_sq;
 * RMSprop square_avg then (with momentum) the momentum buffer. */
size_t nr_optim_state_count(const nr_optim *o, size_t n);

/* One update of w (n floats) with gradient g at learning rate lr. `step` is
 * the number of this step, 1 for the first (Adam's bias correction; SGD's
 * momentum buffer starts as g on step 1). state holds
 * nr_optim_state_count floats, zero before the first step. */
void nr_optim_step(const nr_optim *o, float lr, long step, float *w, const float *g, float *state,
                   size_t n);

/* SAM's ascent: step = (w^2 if adaptive else 1) * g * rho / (||(|w| if
 * adaptive else 1) * g||_2 + 1e-12), the norm over all n parameters
 * (accumulated in double); w += step. Fills e (n floats) for
 * nr_sam_restore and returns the norm. e holds the weights from before the
 * ascent, not the step: in float (w + step) - step is not always w, and the
 * reference implementation restores the saved weights exactly. */
double nr_sam_perturb(const nr_optim *o, float *w, const float *g, float *e, size_t n);
/* Back to the weights before the ascent, bit for bit (w = e). */
void nr_sam_restore(float *w, const float *e, size_t n);

/* Learning rate for the step about to be taken: epoch (0-based) and
 * iteration (0-based count of steps over the whole run) of that step. */
double nr_schedule_lr(const nr_schedule *s, double lr0, int epoch, long iteration, int epochs,
                      long iters_per_epoch);
#endif
