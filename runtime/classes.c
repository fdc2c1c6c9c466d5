#include "classes.h"
#include <stddef.h>

static const char *const digits[] = { "0", "1", "2", "3", "4", "5", "6", "7", "8", "9" };
static const char *const fashion[] = { "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                       "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot" };
static const char *const cifar10[] = { "airplane", "automobile", "bird", "cat", "deer",
                                       "dog", "frog", "horse", "ship", "truck" };
/* Fine labels in the canonical (alphabetical) order, as the shared copy's labels.tsv names them. */
static const char *const cifar100[] = {
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup",
    "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house",
    "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man",
    "maple", "motorcycle", "mountain", "mouse", "mushroom", "oak", "orange", "orchid", "otter",
    "palm", "pear", "pickup_truck", "pine", "plain", "plate", "poppy", "porcupine", "possum",
    "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
    "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper",
    "table", "tank", "telephone", "television", "tiger", "tractor", "train", "trout", "tulip",
    "turtle", "wardrobe", "whale", "willow", "wolf", "woman", "worm",
};

const char *const *nr_class_names(nr_dataset_kind kind, int classes)
{
    switch (kind) {
    case NR_DS_MNIST: return classes == 10 ? digits : NULL;
    case NR_DS_FASHION_MNIST: return classes == 10 ? fashion : NULL;
    case NR_DS_CIFAR10: return classes == 10 ? cifar10 : NULL;
    case NR_DS_CIFAR100: return classes == 100 ? cifar100 : NULL;
    case NR_DS_FOLDER: return NULL;
    }
    return NULL;
}
