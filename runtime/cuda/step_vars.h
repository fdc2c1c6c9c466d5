/* The values that change from one training step to the next, kept in
 * device memory so that a CUDA graph captured once replays every step: the
 * kernels read them through a pointer instead of taking them by value (a
 * value would be frozen into the graph). The host fills one per step
 * (nr_gpu_step_vars in layers.c, with the formulas of runtime/optim.c) and
 * queues its upload before the step's launches. Plain C, included by host
 * and device code alike; every field is 8 bytes or a pair of 4, so both
 * sides lay it out the same. */
#ifndef NR_CUDA_STEP_VARS_H
#define NR_CUDA_STEP_VARS_H

typedef struct nr_step_vars {
    long long step;               /* optimizer steps before this one: dropout draws 2 * step + pass */
    long long slot;               /* where the loss kernel writes the loss and the correct count */
    float lr;
    int sgd_mode;                 /* 0: no momentum; 1: first step with momentum (buf = d); 2: later */
    float adam_decay_factor;      /* 1 - lr * wd (AdamW's decoupled decay) */
    float adam_neg_step_size;     /* -lr / (1 - beta1^t) */
    float adam_bc2_sqrt;          /* sqrt(1 - beta2^t) */
    int unused;
} nr_step_vars;

/* Bytes of one loss result (slot): the mean loss (a double), then the correct count (an int). */
#define NR_LOSS_RESULT_BYTES 16
#endif
