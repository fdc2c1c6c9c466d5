#!/bin/bash
# CPU benchmark: one training epoch of models/lenet5_fashion.net (W5 base
# case) in netc and the same model in PyTorch (Debian's python3-torch) on
# this machine, same batch and threads. Prints images/second for both and
# their ratio. Not a test: run it by hand on a quiet machine.
#
#   bench/cpu_vs_torch.sh [--batches "32 100"] [--threads N] [--epochs N] [--repeat N]
#
# With --repeat N each side runs N times and the best images/second counts
# (the least disturbed run on a shared machine).
#
# Needs a built tree (compiler/netc, runtime/libnetrt.a) configured WITHOUT
# --enable-sanitizers, Fashion-MNIST (scripts/install-deps) and python3-torch
# (apt-get install python3-torch).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
batches="32 100"
threads=$(nproc)
epochs=1
repeat=1
while [ $# -gt 0 ]; do
    case $1 in
    --batches) batches=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    *) echo "usage: $0 [--batches \"32 100\"] [--threads N] [--epochs N] [--repeat N]" >&2; exit 2 ;;
    esac
done
netc=$here/compiler/netc
[ -x "$netc" ] || { echo "build netc first (./bootstrap && ./configure && make)" >&2; exit 1; }
if grep -q -- '-fsanitize' "$here/config.log" 2> /dev/null && grep -q 'enable_sanitizers=yes' "$here/config.log"; then
    echo "warning: this tree is built with sanitizers; figures will be far too slow" >&2
fi
# Debian's python3-torch lives in the system Python, which may not be the first python3 on PATH.
python=${PYTHON:-/usr/bin/python3}
"$python" -c 'import torch' 2> /dev/null || { echo "PyTorch missing for $python: apt-get install python3-torch" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$netc" "$here/models/lenet5_fashion.net" -o "$tmp/lenet"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "threads $threads, epochs $epochs, W5 base case (LeNet-5, tanh, avgpool, Adam 0.001) on Fashion-MNIST"
printf '%-6s %14s %14s %8s %10s %10s\n' batch netc_img/s torch_img/s ratio netc_acc torch_acc
best() { sort -g | tail -1; }
for b in $batches; do
    netc_all="" torch_all=""
    for r in $(seq "$repeat"); do
        rm -rf "$tmp/run$b"
        "$tmp/lenet" train --batch "$b" --epochs "$epochs" --threads "$threads" --out "$tmp/run$b" --quiet > /dev/null
        netc_all="$netc_all $(sed -n 's/.*"images_per_second": \([0-9.e+]*\).*/\1/p' "$tmp/run$b/summary.json")"
        netc_acc=$(sed -n 's/.*"test_accuracy": \([0-9.e+]*\).*/\1/p' "$tmp/run$b/summary.json")
        line=$("$python" "$here/bench/torch_lenet5_fashion.py" --batch "$b" --threads "$threads" --epochs "$epochs")
        torch_all="$torch_all $(echo "$line" | sed -n 's/.*images_per_sec=\([0-9.e+]*\).*/\1/p')"
        torch_acc=$(echo "$line" | sed -n 's/.*test_acc=\([0-9.e+]*\).*/\1/p')
    done
    netc_ips=$(echo $netc_all | tr ' ' '\n' | best)
    torch_ips=$(echo $torch_all | tr ' ' '\n' | best)
    awk -v b="$b" -v n="$netc_ips" -v t="$torch_ips" -v na="$netc_acc" -v ta="$torch_acc" \
        'BEGIN { printf "%-6s %14.0f %14.0f %7.2fx %9.2f%% %9.2f%%\n", b, n, t, n / t, 100 * na, 100 * ta }'
    if [ "$repeat" -gt 1 ]; then echo "       all runs: netc$netc_all; torch$torch_all"; fi
done
