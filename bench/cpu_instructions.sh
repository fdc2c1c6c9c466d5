#!/bin/bash
# Instructions per training image (forward, backward and optimizer step of
# the CPU backend's training steps, nothing else), counted by valgrind's
# callgrind: a figure the load of a shared machine cannot move, so a change
# to the CPU kernels can be judged by it where timings are noise.
#
#   bench/cpu_instructions.sh [--model FILE] [--data DIR] [--batches "32 100"] [--images N]
#
# Counts one epoch of N training images (default 800) on one thread; the
# count covers the calls of the backend's train_step only (callgrind's
# --toggle-collect), so data loading, evaluation and reports do not enter.
# One thread: with more, the count would also depend on how long threads
# wait. Needs valgrind and the model's dataset (Fashion-MNIST by default).
# W6: --model models/cifar_hw02.net --data DIR --batches 128, DIR holding CIFAR-10
# (scripts/get-data cifar10 DIR); the data set loads under valgrind too, which
# takes longer from the JPEG folders than from the binaries (no effect on the count).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
batches="32 100"
images=800
model=$here/models/lenet5_fashion.net
data=()
while [ $# -gt 0 ]; do
    case $1 in
    --batches) batches=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --data) data=(--data "$2"); shift 2 ;;
    *) echo "usage: $0 [--model FILE] [--data DIR] [--batches \"32 100\"] [--images N]" >&2; exit 2 ;;
    esac
done
# Set here, the program does not start itself again to set it (callgrind
# would then count nothing: it does not follow the exec).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
command -v valgrind > /dev/null || { echo "valgrind missing: apt-get install valgrind" >&2; exit 1; }
netc=$here/compiler/netc
[ -x "$netc" ] || { echo "build netc first (./bootstrap && ./configure && make)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$netc" "$model" -o "$tmp/prog"

echo "model $(basename "$model"), 1 thread, $images training images"
printf '%-6s %14s\n' batch instr/image
for b in $batches; do
    valgrind --tool=callgrind --callgrind-out-file=/dev/null --collect-atstart=no --toggle-collect=cpu_train_step \
        "$tmp/prog" train "${data[@]}" --batch "$b" --epochs 1 --threads 1 --train-limit "$images" --test-limit 10 \
        --out "$tmp/run" --quiet > /dev/null 2> "$tmp/vg" || { cat "$tmp/vg" >&2; exit 1; }
    rm -rf "$tmp/run"
    collected=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$tmp/vg")
    awk -v b="$b" -v c="$collected" -v n="$images" 'BEGIN { printf "%-6s %14.0f\n", b, c / n }'
done
