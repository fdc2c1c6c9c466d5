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
python3 tests/make_standin_data.py "$fashion" "$tmp/data" || { echo "Bail out! cannot make the stand-in data"; exit 99; }

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
