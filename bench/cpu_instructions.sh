#!/bin/bash
# Instructions per training image (forward, backward and optimizer step),
# counted by valgrind's callgrind: a figure that does not move with the load
# of a shared machine, so a change to the CPU kernels can be judged by it
# where timings are noise. Two runs of one epoch that differ only in the
# number of training images; the difference of their counts over the
# difference of images cancels start-up, data loading and testing.
#
#   bench/cpu_instructions.sh [--batches "32 100"] [--threads N] [--images "256 768"]
#
# One thread by default: with more, spinning at barriers adds instructions
# that measure the scheduler, not the work. Needs valgrind and Fashion-MNIST.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
batches="32 100"
threads=1
images="400 800"
model=$here/models/lenet5_fashion.net
while [ $# -gt 0 ]; do
    case $1 in
    --batches) batches=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    *) echo "usage: $0 [--batches \"32 100\"] [--threads N] [--images \"N1 N2\"] [--model FILE]" >&2; exit 2 ;;
    esac
done
command -v valgrind > /dev/null || { echo "valgrind missing: apt-get install valgrind" >&2; exit 1; }
netc=$here/compiler/netc
[ -x "$netc" ] || { echo "build netc first (./bootstrap && ./configure && make)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$netc" "$model" -o "$tmp/prog"
read -r small large <<< "$images"

count() {  # batch images: instructions of one epoch on that many images
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$tmp/prog" train --batch "$1" --epochs 1 \
        --threads "$threads" --train-limit "$2" --test-limit 100 --out "$tmp/run" --quiet > /dev/null 2> "$tmp/vg"
    rm -rf "$tmp/run"
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$tmp/vg"
}

echo "model $(basename "$model"), threads $threads, images $small vs $large"
printf '%-6s %18s\n' batch instr/image
for b in $batches; do
    a=$(count "$b" "$small")
    z=$(count "$b" "$large")
    awk -v b="$b" -v a="$a" -v z="$z" -v s="$small" -v l="$large" \
        'BEGIN { printf "%-6s %18.0f\n", b, (z - a) / (l - s) }'
done
