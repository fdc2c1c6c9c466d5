#!/bin/bash
# Every model of models/ compiles into a program that trains one short epoch
# and tests, one TAP line each: SAM, BatchNorm, dropout, augmentation,
# bicubic resize, every schedule and loss the files use run end to end.
# The data are stand-ins in the real formats: MNIST-format files cut from
# Fashion-MNIST, and CIFAR-10/100 binary batches of random pixels, so what is
# checked is that each program runs and writes its records, not accuracy.
set -u
srcdir=${srcdir:-.}
netc=${NETC:-$PWD/compiler/netc}
case $netc in /*) ;; *) netc=$PWD/$netc ;; esac
cd "$srcdir" || exit 99
. tests/lib.sh
fashion=${NETC_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
need_fashion_mnist "$fashion"
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT

# Enough training images for the largest validation split (W2 holds out 12,000).
python3 - "$fashion" "$tmp/data" <<'EOF' || { echo "Bail out! cannot make the stand-in data"; exit 99; }
import gzip, os, random, struct, sys
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(f"{dst}/mnist")
for split, count in (("train", 12100), ("t10k", 100)):
    with gzip.open(f"{src}/{split}-images-idx3-ubyte.gz") as f:
        head = f.read(16)
        pixels = f.read(count * 784)
    with open(f"{dst}/mnist/{split}-images-idx3-ubyte", "wb") as f:
        f.write(head[:4] + struct.pack(">I", count) + head[8:] + pixels)
    with gzip.open(f"{src}/{split}-labels-idx1-ubyte.gz") as f:
        head = f.read(8)
        labels = f.read(count)
    with open(f"{dst}/mnist/{split}-labels-idx1-ubyte", "wb") as f:
        f.write(head[:4] + struct.pack(">I", count) + labels)
rng = random.Random(0)
def records(n, classes, cifar100):
    out = bytearray()
    for _ in range(n):
        label = rng.randrange(classes)
        out += bytes([label // 5, label]) if cifar100 else bytes([label])
        out += rng.randbytes(3072)
    return bytes(out)
os.makedirs(f"{dst}/cifar10")
for i in range(1, 6):
    open(f"{dst}/cifar10/data_batch_{i}.bin", "wb").write(records(2040, 10, False))
open(f"{dst}/cifar10/test_batch.bin", "wb").write(records(100, 10, False))
os.makedirs(f"{dst}/cifar100")
open(f"{dst}/cifar100/train.bin", "wb").write(records(200, 100, True))
open(f"{dst}/cifar100/test.bin", "wb").write(records(100, 100, True))
EOF
mkdir -p "$tmp/data/fashion-mnist"
cp "$tmp/data/mnist/"* "$tmp/data/fashion-mnist/"

n=0
failed=0
for f in models/*.net; do
    name=$(basename "$f" .net)
    n=$((n + 1))
    log=$tmp/$name.log
    if "$netc" "$f" -o "$tmp/$name" > "$log" 2>&1 &&
        "$tmp/$name" train --data "$tmp/data" --epochs 1 --batch 16 --train-limit 48 --test-limit 32 \
            --threads 2 --out "$tmp/run-$name" --quiet >> "$log" 2>&1 &&
        grep -q '"status": "trained"' "$tmp/run-$name/summary.json" &&
        [ -s "$tmp/run-$name/model.safetensors" ] && [ -s "$tmp/run-$name/report.html" ]; then
        echo "ok $n - $f compiles, trains an epoch on stand-in data and writes its records"
    else
        failed=$((failed + 1))
        echo "not ok $n - $f compiles, trains an epoch on stand-in data and writes its records"
        sed 's/^/# /' "$log" | tail -20
    fi
done
echo "1..$n"
[ "$failed" = 0 ]
