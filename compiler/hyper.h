/* Tables for everything outside the layer list: the settings of each block
 * (model, data, augment, train, noise_test), and the optimizers, schedules,
 * losses, data transforms and augmentations they name. */
#ifndef NETC_HYPER_H
#define NETC_HYPER_H
#include "spec.h"

/* Blocks and their settings. */
typedef enum { B_MODEL, B_DATA, B_AUGMENT, B_TRAIN, B_NOISE_TEST, B_COUNT } block_id;
extern const call_table block_settings;  /* row i: settings of block i */

enum { MODEL_INPUT, MODEL_CLASSES, MODEL_INIT, MODEL_AUTO_FLATTEN };
enum { DATA_DATASET, DATA_PATH, DATA_VALIDATION };
enum { AUG_COPIES };
enum { TRAIN_EPOCHS, TRAIN_BATCH, TRAIN_OPTIMIZER, TRAIN_SCHEDULE, TRAIN_LOSS, TRAIN_SEED,
       TRAIN_SHUFFLE, TRAIN_PRECISION, TRAIN_THREADS };
enum { NT_STD, NT_SEED, NT_AT, NT_CLAMP, NT_SAME_NOISE };

/* Statements written as bare calls inside data and augment blocks. */
extern const call_table data_ops;       /* normalize, resize */
extern const call_table augment_ops;    /* rotate, hflip, crop, noise */
/* normalize: one the noise test applies and training did not (W1's script) */
extern const call_table noise_test_ops;
enum { NTOP_NORMALIZE };
typedef enum { D_NORMALIZE, D_RESIZE } data_op_id;
enum { NORM_MEAN, NORM_STD };
enum { RESIZE_SIZE, RESIZE_MODE };
typedef enum { A_ROTATE, A_HFLIP, A_CROP, A_NOISE } augment_op_id;
enum { ROT_DEGREES, ROT_INTERPOLATION, ROT_FILL };
enum { HFLIP_P };
enum { CROP_SIZE, CROP_PADDING };
enum { ANOISE_STD, ANOISE_CLAMP, ANOISE_AT };

extern const call_table optimizers;
typedef enum { O_SGD, O_ADAM, O_ADAMW, O_RMSPROP, O_SAM } optimizer_id;
enum { SGD_LR, SGD_MOMENTUM, SGD_DAMPENING, SGD_NESTEROV, SGD_WEIGHT_DECAY };
enum { ADAM_LR, ADAM_BETA1, ADAM_BETA2, ADAM_EPS, ADAM_WEIGHT_DECAY };
enum { RMS_LR, RMS_ALPHA, RMS_EPS, RMS_MOMENTUM, RMS_WEIGHT_DECAY };
enum { SAM_BASE, SAM_RHO, SAM_ADAPTIVE };

extern const call_table schedules;
typedef enum { S_CONSTANT, S_STEP, S_MULTISTEP, S_COSINE } schedule_id;
enum { STEP_STEP, STEP_GAMMA, STEP_PER };
enum { MS_MILESTONES, MS_FRACTIONS, MS_GAMMA, MS_PER };
enum { COS_T_MAX, COS_ETA_MIN, COS_PER };
enum { PER_EPOCH, PER_ITERATION };

extern const call_table losses;
typedef enum { LOSS_CROSS_ENTROPY, LOSS_NLL, LOSS_MSE, LOSS_MULTI_MARGIN } loss_id;
enum { CE_LABEL_SMOOTHING, CE_SMOOTHING_FORM };
enum { SMOOTH_ALL_CLASSES, SMOOTH_OTHER_CLASSES };
enum { MSE_SOFTMAX };
enum { MM_MARGIN, MM_P };

enum { NT_AFTER_NORMALIZE, NT_BEFORE_NORMALIZE };

/* What the front end knows of each dataset, for checks before any data is read. */
typedef enum { DS_MNIST, DS_FASHION_MNIST, DS_CIFAR10, DS_CIFAR100, DS_FOLDER } dataset_id;
typedef struct dataset_info {
    const char *name;
    int channels, height, width, classes;
    int train_count, test_count;  /* 0 when unknown */
} dataset_info;
extern const dataset_info datasets[];
#endif
