/* The IR: a program is a model graph of typed ops with resolved options and
 * inferred shapes, plus the resolved data, augmentation, training and
 * noise-test specifications. The graph is sequential today; each node names
 * its inputs so branches need no new representation. */
#ifndef NETC_IR_H
#define NETC_IR_H
#include "layers.h"
#include "hyper.h"

typedef struct ir_node {
    int id;
    char *name;
    int auto_named;          /* the user gave no name */
    loc where;
    resolved *op;            /* the layer kind (op->index is a layer_id) and its options */
    int inputs[2];           /* ids of producers; -1 is the model input */
    int ninputs;
    shape in, out;
    long long params, macs;
    int has_expect;          /* the user documented the output shape */
    int expect_rank;         /* dimensions after the batch one */
    long long expect_dims[3];
    long long expect_batch;  /* 0 when written N */
    loc expect_loc, expect_batch_loc;
    int after_gap;           /* a layer written before it (after the node before) did not resolve */
} ir_node;

typedef struct ir_model {
    char *name;
    loc where;
    shape input;
    loc input_loc;
    int input_given;
    long long input_batch;   /* the batch written in front of the input; 0 when N or none */
    loc input_batch_loc;
    int classes;
    int init;                /* index into init_names, never INIT_MODEL */
    int auto_flatten;
    ir_node *nodes;
    int count;
    int shaped;              /* nodes[0..shaped) have inferred shapes (count when all do) */
    int tail_gap;            /* the last layer written did not resolve */
} ir_model;

typedef struct ir_param {
    char *name;
    char *value_text;        /* final value as source text (after -D) */
    int overridden;
} ir_param;

typedef struct ir_sweep {
    char **names;
    int nnames;
    ast_value *values;       /* V_LIST: one value per point (a list when several names) */
    loc where;
} ir_sweep;

typedef struct ir_program {
    const source *src;
    ir_model model;
    resolved *data;          /* settings of the data block (defaults when absent) */
    resolved **data_ops;     /* normalize / resize, in order */
    int ndata_ops;
    resolved *augment;
    resolved **aug_ops;
    int naug_ops;
    resolved *train;
    resolved *noise_test;    /* NULL when the file has no noise_test block */
    resolved *noise_normalize; /* the noise test's own normalize(), or NULL */
    int has_data;
    ir_sweep *sweeps;
    int nsweeps;
    ir_param *params;
    int nparams;
    /* Totals filled by the shape pass. */
    long long total_params, trainable_params, total_macs, activation_floats;
} ir_program;

void ir_program_free(ir_program *p);
/* Human-readable dump (netc --emit-ir). */
void ir_dump(const ir_program *p, FILE *out);
/* The layer table (netc --print-shapes). */
void ir_print_shapes(const ir_program *p, FILE *out);
const dataset_info *ir_dataset(const ir_program *p);
#endif
