#!/usr/bin/env python3
"""PyTorch side of the CPU benchmark: W6, models/cifar_hw02.net (the CIFAR-10 "HW02"
ConvNet) trained on CIFAR-10 in plain PyTorch, on the training images netc trains on.

Prints one machine-readable line:
  torch images_per_sec=... epoch_seconds=... batch=... threads=... train_loss=...
        test_acc=... torch_version=...

Only the training epochs are timed, without a DataLoader (bench/torch_bench_common.py).

The data, read as netc's runtime reads them (runtime/data.c):
- --data names a folder holding the official binaries (data_batch_1..5.bin and
  test_batch.bin, there or in cifar-10-batches-bin/), or the train/<class>/*.jpg and
  test/<class>/*.jpg folders scripts/get-data makes from the shared JPEG copy (decoded
  with Pillow, which uses libjpeg as netc does), also looked for in DIR/cifar10 and
  DIR/cifar-10. In a folder, images are ordered as netc orders them: classes by sorted
  name, then files by sorted (directory, name).
- Pixels in [0, 1] (pixels / 255), no normalisation, as the model file says.
- The 40,000 / 10,000 split is netc's: a permutation of the 50,000 training images drawn
  from netc's seed (Philox4x32-10, runtime/rng.c), its last 10,000 held out. Training uses
  the first 40,000 entries of that permutation, and --limit N the first N of those, as
  netc's --train-limit does. --split-seed must be the seed netc ran with (summary.json's
  "seed"; the model's default is 0).

  --write-bin DIR writes the data set as official-layout binaries (data_batch_1..5.bin,
  test_batch.bin) into DIR and stops: bench/cpu_vs_torch.sh uses it so that netc and
  every peer read the same bytes even when only one Python has Pillow.
"""
import os

import torch_bench_common as common  # exits with a hint when torch is missing
import numpy as np
import torch
import torch.nn as nn

PIXELS = 3 * 32 * 32
RECORD = 1 + PIXELS  # label byte, then the R, G and B planes, row-major
TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]
TEST_FILE = "test_batch.bin"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def read_bin(paths):
    """Official CIFAR-10 binary files as (uint8 [N,3,32,32], int64 [N])."""
    chunks = []
    for path in paths:
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size % RECORD:
            raise ValueError(f"{path}: {raw.size} bytes is not a whole number of {RECORD}-byte records")
        chunks.append(raw.reshape(-1, RECORD))
    records = np.concatenate(chunks)
    labels = records[:, 0].astype(np.int64)
    if labels.size and labels.max() > 9:
        raise ValueError(f"{paths[0]}...: label {labels.max()} out of range 0..9")
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


def folder_files(root):
    """(path, label) of every image under root/<class>/, in netc's order."""
    classes = sorted(d for d in os.listdir(root) if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))
    files = []
    for label, name in enumerate(classes):
        found = []
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, name), followlinks=True):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            found += [(dirpath.encode(), f.encode()) for f in filenames
                      if not f.startswith(".") and f.lower().endswith(IMAGE_SUFFIXES)]
        files += [(os.path.join(d, f).decode(), label) for d, f in sorted(found)]
    return files


def read_folder(root):
    """A train/ or test/ folder of images as (uint8 [N,3,32,32], int64 [N])."""
    try:
        from PIL import Image
    except ImportError:
        raise SystemExit(f"{root}: reading JPEG folders needs Pillow, missing under this Python; "
                         f"convert once with a Python that has it (--write-bin DIR) and pass --data DIR")
    files = folder_files(root)
    pixels = np.empty((len(files), 3, 32, 32), dtype=np.uint8)
    for i, (path, _) in enumerate(files):
        with Image.open(path) as im:
            hwc = np.asarray(im.convert("RGB"))
        if hwc.shape != (32, 32, 3):
            raise ValueError(f"{path}: image is {hwc.shape[1]}x{hwc.shape[0]}, expected 32x32")
        pixels[i] = hwc.transpose(2, 0, 1)
    return pixels, np.array([label for _, label in files], dtype=np.int64)


def find_data(data_dir):
    """(kind, folder): 'bin' with the binaries' folder, or 'folder' with the one holding train/ and test/."""
    for base in (os.path.join(data_dir, "cifar10"), os.path.join(data_dir, "cifar-10"), data_dir):
        for d in (base, os.path.join(base, "cifar-10-batches-bin")):
            if all(os.path.isfile(os.path.join(d, f)) for f in TRAIN_FILES + [TEST_FILE]):
                return "bin", d
        if os.path.isdir(os.path.join(base, "train")) and os.path.isdir(os.path.join(base, "test")):
            return "folder", base
    raise FileNotFoundError(f"{data_dir}: no CIFAR-10 (binaries or train/ and test/ folders); "
                            f"run scripts/get-data --offline cifar10 {data_dir}")


def load_cifar10(data_dir):
    """((train pixels, labels), (test pixels, labels)) as uint8 and int64 arrays."""
    kind, d = find_data(data_dir)
    if kind == "bin":
        return read_bin([os.path.join(d, f) for f in TRAIN_FILES]), read_bin([os.path.join(d, TEST_FILE)])
    return read_folder(os.path.join(d, "train")), read_folder(os.path.join(d, "test"))


def write_bin(train, test, out_dir):
    """The official binary layout: five training files of 10,000 records, then the test file."""
    os.makedirs(out_dir, exist_ok=True)
    (x, y), n = train, train[0].shape[0]
    if n % len(TRAIN_FILES):
        raise ValueError(f"{n} training images do not split into {len(TRAIN_FILES)} equal files")
    per = n // len(TRAIN_FILES)
    parts = [(name, x[i * per:(i + 1) * per], y[i * per:(i + 1) * per]) for i, name in enumerate(TRAIN_FILES)]
    for name, px, lb in parts + [(TEST_FILE, test[0], test[1])]:
        records = np.concatenate([lb.astype(np.uint8)[:, None], px.reshape(-1, PIXELS)], axis=1)
        records.tofile(os.path.join(out_dir, name))


# ---- netc's validation split (runtime/nr_math.h, runtime/rng.c) ----

M32 = 0xFFFFFFFF
RNG_SPLIT = 3  # nr_rng_purpose: NR_RNG_INIT = 1, NR_RNG_SHUFFLE, NR_RNG_SPLIT


def philox4x32_10(key, counters):
    """Philox4x32-10 of the uint64 arrays c0..c3 (32-bit values) under key (k0, k1)."""
    c0, c1, c2, c3 = counters
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    mask = np.uint64(M32)
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c0
        p1 = np.uint64(0xCD9E8D57) * c2
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ k0, p1 & mask, (p0 >> np.uint64(32)) ^ c3 ^ k1, p0 & mask)
        k0 = (k0 + np.uint64(0x9E3779B9)) & mask
        k1 = (k1 + np.uint64(0xBB67AE85)) & mask
    return c0, c1, c2, c3


def netc_permutation(seed, n, purpose=RNG_SPLIT, a=0, b=0):
    """nr_permutation(nr_stream_make(seed, purpose, a, b), n): Fisher-Yates, draw i for slot i."""
    i = np.arange(n, dtype=np.uint64)
    const = lambda v: np.full(n, v, dtype=np.uint64)  # noqa: E731
    w0, w1, _, _ = philox4x32_10((seed & M32, seed >> 32), (i & np.uint64(M32), i >> np.uint64(32), const(a),
                                                            const(((purpose << 24) ^ b) & M32)))
    draws = ((w1 << np.uint64(32)) | w0).tolist()
    perm = list(range(n))
    for k in range(n, 1, -1):
        j = (draws[k - 1] * k) >> 64  # nr_below: the high 64 bits of the 128-bit product
        perm[k - 1], perm[j] = perm[j], perm[k - 1]
    return np.array(perm, dtype=np.int64)


def netc_training_indices(n, validation, seed, limit):
    """The images netc trains on (runtime/train.c split_data), in netc's order."""
    if validation >= n:
        raise ValueError(f"validation = {validation}, but the training set has only {n} images")
    order = netc_permutation(seed, n) if validation else np.arange(n)
    train = order[:n - validation]
    return train[:limit] if limit else train


def cifar_hw02():
    """W6: models/cifar_hw02.net; PyTorch's default init, as netc's."""
    return nn.Sequential(
        nn.Conv2d(3, 6, kernel_size=5, padding=2, padding_mode="reflect"), nn.BatchNorm2d(6), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, kernel_size=3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, kernel_size=3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(512, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )


def as_tensors(pixels, labels):
    """float32 [N,3,32,32] in [0,1] (pixels/255, no normalisation) and int64 labels."""
    return torch.from_numpy(pixels.astype(np.float32) / 255.0), torch.from_numpy(labels)


def options(ap):
    ap.add_argument("--validation", type=int, default=10000, help="images netc holds out (the model's data.validation)")
    ap.add_argument("--split-seed", type=int, default=0, help="the seed netc ran with (its summary.json's \"seed\")")
    ap.add_argument("--write-bin", metavar="DIR", help="write the data as CIFAR-10 binaries into DIR, then stop")


def main():
    args = common.arguments(__doc__.split("\n\n")[0], "data", "CIFAR-10: binaries or train/ and test/ image folders",
                            batch=128, lr=0.0005, extra=options)
    if args.write_bin:
        write_bin(*load_cifar10(args.data), args.write_bin)
        return
    generator = common.setup(args)
    (x, y), test = load_cifar10(args.data)
    idx = netc_training_indices(x.shape[0], args.validation, args.split_seed, args.limit)
    model = cifar_hw02()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    common.train_and_report(args, model, optimizer, as_tensors(x[idx], y[idx]), as_tensors(*test), generator)


if __name__ == "__main__":
    main()
