#include "hyper.h"

#define INF 1e308
#define KW (-1)
#define ARRAY_LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define OPTS(a) a, ARRAY_LEN(a)
#define ROW(name, opts, doc) { name, NULL, OPTS(opts), doc }
#define TABLE(what, rows) { what, rows, sizeof rows[0], ARRAY_LEN(rows) }

/* Strictly positive numbers, for learning rates and sizes. */
#define POSITIVE 1e-300

const dataset_info datasets[] = {
    [DS_MNIST] = { "mnist", 1, 28, 28, 10, 60000, 10000 },
    [DS_FASHION_MNIST] = { "fashion_mnist", 1, 28, 28, 10, 60000, 10000 },
    [DS_CIFAR10] = { "cifar10", 3, 32, 32, 10, 50000, 10000 },
    [DS_CIFAR100] = { "cifar100", 3, 32, 32, 100, 50000, 10000 },
    [DS_FOLDER] = { "folder", 0, 0, 0, 0, 0, 0 },
};
static const char *const dataset_names[] = { "mnist", "fashion_mnist", "cifar10", "cifar100", "folder", NULL };
static const char *const per_names[] = { "epoch", "iteration", NULL };
static const char *const smoothing_forms[] = { "all_classes", "other_classes", NULL };
static const char *const noise_at[] = { "after_normalize", "before_normalize", NULL };
static const char *const aug_noise_at[] = { "before_normalize", "after_normalize", NULL };
static const char *const interpolations[] = { "nearest", "bilinear", NULL };
static const char *const resize_modes[] = { "bilinear", "bicubic", NULL };
static const char *const precisions[] = { "fp32", "tf32", NULL };
/* A model's init cannot be "model"; this list starts at pytorch. */
static const char *const model_inits[] = {
    "pytorch", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", NULL
};

/* ---- optimizers ------------------------------------------------------- */

static const opt_def sgd_opts[] = {
    [SGD_LR] = { "lr", OPT_FLOAT, 0, NULL, POSITIVE, INF, NULL, 0, 0, NULL, 0, "learning rate" },
    [SGD_MOMENTUM] = { "momentum", OPT_FLOAT, 0, "0", 0, 1, NULL, 0, 0, NULL, KW, "momentum factor" },
    [SGD_DAMPENING] = { "dampening", OPT_FLOAT, 0, "0", 0, 1, NULL, 0, 0, NULL, KW, "dampening of momentum" },
    [SGD_NESTEROV] = { "nesterov", OPT_BOOL, 0, "false", 0, 1, NULL, 0, 0, NULL, KW, "Nesterov momentum" },
    [SGD_WEIGHT_DECAY] = { "weight_decay", OPT_FLOAT, 0, "0", 0, INF, NULL, 0, 0, NULL, KW,
                           "L2 penalty added to the gradient" },
};
static const opt_def adam_opts[] = {
    [ADAM_LR] = { "lr", OPT_FLOAT, 1e-3, "0.001", POSITIVE, INF, NULL, 0, 0, NULL, 0, "learning rate" },
    [ADAM_BETA1] = { "beta1", OPT_FLOAT, 0.9, "0.9", 0, 1, NULL, 0, 0, NULL, KW, "first-moment decay", 1 },
    [ADAM_BETA2] = { "beta2", OPT_FLOAT, 0.999, "0.999", 0, 1, NULL, 0, 0, NULL, KW,
                     "second-moment decay", 1 },
    [ADAM_EPS] = { "eps", OPT_FLOAT, 1e-8, "1e-8", 0, 1, NULL, 0, 0, NULL, KW,
                   "added outside the square root" },
    [ADAM_WEIGHT_DECAY] = { "weight_decay", OPT_FLOAT, 0, "0", 0, INF, NULL, 0, 0, NULL, KW,
                            "L2 penalty added to the gradient" },
};
static const opt_def adamw_opts[] = {
    [ADAM_LR] = { "lr", OPT_FLOAT, 1e-3, "0.001", POSITIVE, INF, NULL, 0, 0, NULL, 0, "learning rate" },
    [ADAM_BETA1] = { "beta1", OPT_FLOAT, 0.9, "0.9", 0, 1, NULL, 0, 0, NULL, KW, "first-moment decay", 1 },
    [ADAM_BETA2] = { "beta2", OPT_FLOAT, 0.999, "0.999", 0, 1, NULL, 0, 0, NULL, KW,
                     "second-moment decay", 1 },
    [ADAM_EPS] = { "eps", OPT_FLOAT, 1e-8, "1e-8", 0, 1, NULL, 0, 0, NULL, KW,
                   "added outside the square root" },
    [ADAM_WEIGHT_DECAY] = { "weight_decay", OPT_FLOAT, 0.01, "0.01", 0, INF, NULL, 0, 0, NULL, KW,
                            "decoupled decay: w -= lr*weight_decay*w" },
};
static const opt_def rmsprop_opts[] = {
    [RMS_LR] = { "lr", OPT_FLOAT, 0.01, "0.01", POSITIVE, INF, NULL, 0, 0, NULL, 0, "learning rate" },
    [RMS_ALPHA] = { "alpha", OPT_FLOAT, 0.99, "0.99", 0, 1, NULL, 0, 0, NULL, KW, "smoothing constant" },
    [RMS_EPS] = { "eps", OPT_FLOAT, 1e-8, "1e-8", 0, 1, NULL, 0, 0, NULL, KW, "added outside the square root" },
    [RMS_MOMENTUM] = { "momentum", OPT_FLOAT, 0, "0", 0, 1, NULL, 0, 0, NULL, KW, "momentum factor" },
    [RMS_WEIGHT_DECAY] = { "weight_decay", OPT_FLOAT, 0, "0", 0, INF, NULL, 0, 0, NULL, KW,
                           "L2 penalty added to the gradient" },
};
extern const call_table optimizers;
static const opt_def sam_opts[] = {
    [SAM_BASE] = { "base", OPT_CALL, 0, NULL, 0, 0, NULL, 0, 0, &optimizers, 0,
                   "the optimizer SAM wraps, e.g. sgd(lr=0.1, momentum=0.9)" },
    [SAM_RHO] = { "rho", OPT_FLOAT, 0.05, "0.05", 0, INF, NULL, 0, 0, NULL, KW, "neighbourhood size" },
    [SAM_ADAPTIVE] = { "adaptive", OPT_BOOL, 0, "false", 0, 1, NULL, 0, 0, NULL, KW,
                       "adaptive SAM (ASAM): scale by |w|" },
};
static const call_def optimizer_rows[] = {
    [O_SGD] = ROW("sgd", sgd_opts, "stochastic gradient descent (PyTorch's SGD)"),
    [O_ADAM] = ROW("adam", adam_opts, "Adam, weight decay added to the gradient"),
    [O_ADAMW] = ROW("adamw", adamw_opts, "Adam with decoupled weight decay"),
    [O_RMSPROP] = ROW("rmsprop", rmsprop_opts, "RMSprop"),
    [O_SAM] = ROW("sam", sam_opts, "sharpness-aware minimisation around a base optimizer"),
};
const call_table optimizers = TABLE("optimizer", optimizer_rows);

/* ---- schedules -------------------------------------------------------- */

static const opt_def step_opts[] = {
    [STEP_STEP] = { "step", OPT_INT, 0, NULL, 1, INF, NULL, 0, 0, NULL, 0, "epochs (or iterations) per decay" },
    [STEP_GAMMA] = { "gamma", OPT_FLOAT, 0.1, "0.1", 0, INF, NULL, 0, 0, NULL, KW, "factor per decay" },
    [STEP_PER] = { "per", OPT_ENUM, PER_EPOCH, "epoch", 0, 0, per_names, 0, 0, NULL, KW, "what 'step' counts" },
};
static const opt_def multistep_opts[] = {
    [MS_MILESTONES] = { "milestones", OPT_INT_LIST, 0, "none", 1, INF, NULL, 1, 0, NULL, 0,
                        "epochs (or iterations) at which lr is multiplied by gamma", 0, 1 },
    [MS_FRACTIONS] = { "fractions", OPT_FLOAT_LIST, 0, "none", 0, 1, NULL, 1, 0, NULL, KW,
                       "milestones as fractions of the whole training", 0, 1 },
    [MS_GAMMA] = { "gamma", OPT_FLOAT, 0.1, "0.1", 0, INF, NULL, 0, 0, NULL, KW, "factor per milestone" },
    [MS_PER] = { "per", OPT_ENUM, PER_EPOCH, "epoch", 0, 0, per_names, 0, 0, NULL, KW, "what milestones count" },
};
static const opt_def cosine_opts[] = {
    [COS_T_MAX] = { "t_max", OPT_INT, 0, "epochs", 1, INF, NULL, 0, 0, NULL, 0, "period (half a cosine)" },
    [COS_ETA_MIN] = { "eta_min", OPT_FLOAT, 0, "0", 0, INF, NULL, 0, 0, NULL, KW, "lowest learning rate" },
    [COS_PER] = { "per", OPT_ENUM, PER_EPOCH, "epoch", 0, 0, per_names, 0, 0, NULL, KW, "what t_max counts" },
};
static const call_def schedule_rows[] = {
    [S_CONSTANT] = { "constant", NULL, NULL, 0, "the learning rate never changes" },
    [S_STEP] = ROW("step", step_opts, "lr0 * gamma^floor(t/step) (PyTorch's StepLR)"),
    [S_MULTISTEP] = ROW("multistep", multistep_opts, "lr multiplied by gamma at each milestone"),
    [S_COSINE] = ROW("cosine", cosine_opts, "cosine annealing (PyTorch's CosineAnnealingLR)"),
};
const call_table schedules = TABLE("schedule", schedule_rows);

/* ---- losses ----------------------------------------------------------- */

static const opt_def ce_opts[] = {
    [CE_LABEL_SMOOTHING] = { "label_smoothing", OPT_FLOAT, 0, "0", 0, 1, NULL, 0, 0, NULL, 0,
                             "probability mass taken from the true class", 1 },
    [CE_SMOOTHING_FORM] = { "smoothing_form", OPT_ENUM, SMOOTH_ALL_CLASSES, "all_classes", 0, 0,
                            smoothing_forms, 0, 0, NULL, KW,
                            "all_classes: target (1-e)*onehot + e/C (PyTorch); "
                            "other_classes: 1-e on the true class, e/(C-1) on each other (SAM's)" },
};
static const opt_def mse_opts[] = {
    [MSE_SOFTMAX] = { "softmax", OPT_BOOL, 1, "true", 0, 1, NULL, 0, 0, NULL, KW,
                      "apply softmax to the outputs before comparing with the one-hot target" },
};
static const opt_def mm_opts[] = {
    [MM_MARGIN] = { "margin", OPT_FLOAT, 1, "1", 0, INF, NULL, 0, 0, NULL, KW, "margin" },
    [MM_P] = { "p", OPT_INT, 1, "1", 1, 2, NULL, 0, 0, NULL, KW, "1 or 2" },
};
static const call_def loss_rows[] = {
    [LOSS_CROSS_ENTROPY] = ROW("cross_entropy", ce_opts, "softmax cross-entropy on logits"),
    [LOSS_NLL] = { "nll", NULL, NULL, 0, "negative log-likelihood of log-probabilities (after log_softmax)" },
    [LOSS_MSE] = ROW("mse", mse_opts, "mean squared error against the one-hot target"),
    [LOSS_MULTI_MARGIN] = ROW("multi_margin", mm_opts, "multi-class hinge loss (PyTorch's MultiMarginLoss)"),
};
const call_table losses = TABLE("loss", loss_rows);

/* ---- data transforms and augmentations -------------------------------- */

static const opt_def normalize_opts[] = {
    [NORM_MEAN] = { "mean", OPT_FLOAT_LIST, 0, NULL, -INF, INF, NULL, 1, 4, NULL, 0, "per-channel mean" },
    [NORM_STD] = { "std", OPT_FLOAT_LIST, 0, NULL, POSITIVE, INF, NULL, 1, 4, NULL, 1, "per-channel std" },
};
static const opt_def resize_opts[] = {
    [RESIZE_SIZE] = { "size", OPT_INT, 0, NULL, 1, 4096, NULL, 0, 0, NULL, 0, "height and width" },
    [RESIZE_MODE] = { "mode", OPT_ENUM, 0, "bilinear", 0, 0, resize_modes, 0, 0, NULL, KW, "interpolation" },
};
static const call_def data_op_rows[] = {
    [D_NORMALIZE] = ROW("normalize", normalize_opts, "(x - mean) / std per channel, x in [0, 1]"),
    [D_RESIZE] = ROW("resize", resize_opts, "resize every image (train and test)"),
};
const call_table data_ops = TABLE("data transform", data_op_rows);

static const call_def noise_test_op_rows[] = {
    [NTOP_NORMALIZE] = ROW("normalize", normalize_opts,
                           "(x - mean) / std per channel, for the noise test only, before its noise"),
};
const call_table noise_test_ops = TABLE("noise_test transform", noise_test_op_rows);

static const opt_def rotate_opts[] = {
    [ROT_DEGREES] = { "degrees", OPT_FLOAT, 0, NULL, 0, 180, NULL, 0, 0, NULL, 0,
                      "angle drawn from U(-degrees, degrees), counter-clockwise positive" },
    [ROT_INTERPOLATION] = { "interpolation", OPT_ENUM, 0, "nearest", 0, 0, interpolations, 0, 0, NULL, KW,
                            "nearest (torchvision's default) or bilinear" },
    [ROT_FILL] = { "fill", OPT_FLOAT, 0, "0", 0, 1, NULL, 0, 0, NULL, KW, "value of pixels rotated in" },
};
static const opt_def hflip_opts[] = {
    [HFLIP_P] = { "p", OPT_FLOAT, 0.5, "0.5", 0, 1, NULL, 0, 0, NULL, 0, "probability of a flip" },
};
static const opt_def crop_opts[] = {
    [CROP_SIZE] = { "size", OPT_INT, 0, "image size", 1, 4096, NULL, 0, 0, NULL, 0, "output height and width" },
    [CROP_PADDING] = { "padding", OPT_INT, 0, "0", 0, 1024, NULL, 0, 0, NULL, KW, "zeros added on each side first" },
};
static const opt_def anoise_opts[] = {
    [ANOISE_STD] = { "std", OPT_FLOAT, 0, NULL, 0, INF, NULL, 0, 0, NULL, 0, "standard deviation" },
    [ANOISE_CLAMP] = { "clamp", OPT_FLOAT_LIST, 0, "none", -INF, INF, NULL, 2, 2, NULL, KW,
                       "[low, high] to clamp the noisy image to", 0, 1 },
    [ANOISE_AT] = { "at", OPT_ENUM, 0, "before_normalize", 0, 0, aug_noise_at, 0, 0, NULL, KW,
                    "add the noise to [0, 1] pixels or to normalized ones" },
};
static const call_def augment_rows[] = {
    [A_ROTATE] = ROW("rotate", rotate_opts, "random rotation about the centre"),
    [A_HFLIP] = ROW("hflip", hflip_opts, "random horizontal flip"),
    [A_CROP] = ROW("crop", crop_opts, "random crop after zero padding"),
    [A_NOISE] = ROW("noise", anoise_opts, "Gaussian noise added to training images"),
};
const call_table augment_ops = TABLE("augmentation", augment_rows);

/* ---- blocks ----------------------------------------------------------- */

static const opt_def model_settings[] = {
    [MODEL_INPUT] = { "input", OPT_INT_LIST, 0, "from the dataset", 1, 1 << 20, NULL, 1, 4, NULL, KW,
                      "[C, H, W] or [F]; a leading N or batch size may be written" },
    [MODEL_CLASSES] = { "classes", OPT_INT, 0, "from the dataset", 2, 1 << 20, NULL, 0, 0, NULL, KW,
                        "number of classes" },
    [MODEL_INIT] = { "init", OPT_ENUM, 0, "pytorch", 0, 0, model_inits, 0, 0, NULL, KW,
                     "weight initialisation of conv and dense layers" },
    [MODEL_AUTO_FLATTEN] = { "auto_flatten", OPT_BOOL, 0, "false", 0, 1, NULL, 0, 0, NULL, KW,
                             "let dense follow an image without an explicit flatten" },
};
static const opt_def data_settings[] = {
    [DATA_DATASET] = { "dataset", OPT_ENUM, 0, NULL, 0, 0, dataset_names, 0, 0, NULL, KW, "which data" },
    [DATA_PATH] = { "path", OPT_STRING, 0, "searched", 0, 0, NULL, 0, 0, NULL, KW,
                    "directory holding the dataset" },
    [DATA_VALIDATION] = { "validation", OPT_INT, 0, "0", 0, INF, NULL, 0, 0, NULL, KW,
                          "training images held out for validation" },
};
static const opt_def augment_settings[] = {
    [AUG_COPIES] = { "copies", OPT_INT, 0, "0", 0, 100, NULL, 0, 0, NULL, KW,
                     "0: augment every image each epoch; n: originals plus n augmented copies" },
};
static const opt_def train_settings[] = {
    [TRAIN_EPOCHS] = { "epochs", OPT_INT, 10, "10", 1, 1e6, NULL, 0, 0, NULL, KW, "passes over the data" },
    [TRAIN_BATCH] = { "batch", OPT_INT, 32, "32", 1, 1 << 20, NULL, 0, 0, NULL, KW, "images per step" },
    [TRAIN_OPTIMIZER] = { "optimizer", OPT_CALL, 0, "adam", 0, 0, NULL, 0, 0, &optimizers, KW, "optimizer" },
    [TRAIN_SCHEDULE] = { "schedule", OPT_CALL, 0, "constant", 0, 0, NULL, 0, 0, &schedules, KW,
                         "learning-rate schedule" },
    [TRAIN_LOSS] = { "loss", OPT_CALL, 0, "cross_entropy", 0, 0, NULL, 0, 0, &losses, KW, "loss" },
    [TRAIN_SEED] = { "seed", OPT_INT, 0, "0", 0, 4294967295.0, NULL, 0, 0, NULL, KW,
                     "seeds init, shuffling, dropout and augmentation" },
    [TRAIN_SHUFFLE] = { "shuffle", OPT_BOOL, 1, "true", 0, 1, NULL, 0, 0, NULL, KW, "reshuffle every epoch" },
    [TRAIN_PRECISION] = { "precision", OPT_ENUM, 0, "fp32", 0, 0, precisions, 0, 0, NULL, KW,
                          "fp32, or tf32 for GEMMs on the GPU" },
    [TRAIN_THREADS] = { "threads", OPT_INT, 0, "0", 0, 4096, NULL, 0, 0, NULL, KW,
                        "CPU threads; 0 uses every core" },
};
static const opt_def noise_test_settings[] = {
    [NT_STD] = { "std", OPT_FLOAT_LIST, 0, NULL, 0, INF, NULL, 1, 64, NULL, KW, "noise levels to test" },
    [NT_SEED] = { "seed", OPT_INT, 0, "0", 0, 4294967295.0, NULL, 0, 0, NULL, KW, "seed of the noise" },
    [NT_AT] = { "at", OPT_ENUM, 0, "after_normalize", 0, 0, noise_at, 0, 0, NULL, KW,
                "add the noise to normalized images or to [0, 1] pixels" },
    [NT_CLAMP] = { "clamp", OPT_FLOAT_LIST, 0, "none", -INF, INF, NULL, 2, 2, NULL, KW,
                   "[low, high] to clamp noisy images to", 0, 1 },
    [NT_SAME_NOISE] = { "same_noise", OPT_BOOL, 0, "false", 0, 1, NULL, 0, 0, NULL, KW,
                        "one noise pattern for every image (reproduces scripts that reset the generator per image)" },
};
static const call_def block_rows[] = {
    [B_MODEL] = ROW("model", model_settings, "the network"),
    [B_DATA] = ROW("data", data_settings, "dataset, split and preprocessing"),
    [B_AUGMENT] = ROW("augment", augment_settings, "training-time augmentation"),
    [B_TRAIN] = ROW("train", train_settings, "training hyperparameters"),
    [B_NOISE_TEST] = ROW("noise_test", noise_test_settings, "accuracy on noisy test images"),
};
const call_table block_settings = TABLE("block", block_rows);
