/* Class names of the known datasets, for the pictures and reports. */
#ifndef NR_CLASSES_H
#define NR_CLASSES_H
#include "netrt.h"

/* The names of the dataset's classes (index = label), or NULL when unknown
 * (folder datasets) or when the model's class count differs. */
const char *const *nr_class_names(nr_dataset_kind kind, int classes);
#endif
