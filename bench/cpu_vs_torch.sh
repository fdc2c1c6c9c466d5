#!/bin/bash
# CPU benchmark: one training epoch of models/lenet5_fashion.net (W5 base
# case) in netc and the same model in PyTorch on this machine, same batch and
# threads. Prints images/second for each and netc's ratio to each PyTorch.
# Not a test: run it by hand on a quiet machine.
#
#   bench/cpu_vs_torch.sh [--batches "32 100"] [--threads "1 2"] [--epochs N]
#                         [--repeat N] [--train-limit N] [--venv DIR] [--no-system]
#
# The PyTorch peers, each run back to back with netc in the same loop:
#   system   Debian's python3-torch (1.13) under /usr/bin/python3, or $PYTHON;
#            left out with --no-system, or when it has no torch and --venv is given.
#   venv     with --venv DIR: current PyTorch from PyPI in a virtual environment
#            at DIR, created (python3 -m venv; pip install torch numpy) when DIR
#            has no torch yet. PyPI's Linux wheel is the CUDA build (about 0.5 GB,
#            plus some GB of NVIDIA libraries it depends on); it runs on the CPU
#            here like any other. Set VENV_PYTHON to pick the interpreter.
#
# With --repeat N every side runs N times and the best images/second counts
# (the least disturbed run on a shared machine); "all runs" lines show the spread.
# --train-limit N trains on the first N images only (both sides), for a quick run.
#
# Needs a built tree (compiler/netc, runtime/libnetrt.a) configured WITHOUT
# --enable-sanitizers and Fashion-MNIST (scripts/install-deps).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: $0 [--batches \"32 100\"] [--threads \"1 2\"] [--epochs N] [--repeat N] [--train-limit N] [--venv DIR] [--no-system]"
batches="32 100"
threads_list=$(nproc)
epochs=1
repeat=1
limit=0
venv=""
use_system=1
while [ $# -gt 0 ]; do
    case $1 in
    --batches) batches=$2; shift 2 ;;
    --threads) threads_list=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --train-limit) limit=$2; shift 2 ;;
    --venv) venv=$2; shift 2 ;;
    --no-system) use_system=0; shift ;;
    *) echo "$usage" >&2; exit 2 ;;
    esac
done
netc=$here/compiler/netc
[ -x "$netc" ] || { echo "build netc first (./bootstrap && ./configure && make)" >&2; exit 1; }
if grep -q -- '-fsanitize' "$here/config.log" 2> /dev/null && grep -q 'enable_sanitizers=yes' "$here/config.log"; then
    echo "warning: this tree is built with sanitizers; figures will be far too slow" >&2
fi

# The peers: parallel arrays of a label and an interpreter.
peer_names=() peer_pythons=()
has_torch() { "$1" -c 'import torch, numpy' 2> /dev/null; }
torch_version() { "$1" -c 'import torch; print(torch.__version__)'; }
# Debian's python3-torch lives in the system Python, which may not be the first python3 on PATH.
system_python=${PYTHON:-/usr/bin/python3}
if [ "$use_system" = 1 ]; then
    if has_torch "$system_python"; then
        peer_names+=("system") peer_pythons+=("$system_python")
    elif [ -z "$venv" ]; then
        echo "PyTorch missing for $system_python: apt-get install python3-torch, or use --venv DIR" >&2
        exit 1
    else
        echo "note: no PyTorch for $system_python; comparing with the venv only" >&2
    fi
fi
if [ -n "$venv" ]; then
    if ! has_torch "$venv/bin/python"; then
        echo "creating $venv with current PyTorch from PyPI (a few GB; minutes)" >&2
        "${VENV_PYTHON:-python3}" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet torch numpy
        has_torch "$venv/bin/python" || { echo "$venv: torch still not importable" >&2; exit 1; }
    fi
    peer_names+=("venv") peer_pythons+=("$venv/bin/python")
fi
[ ${#peer_names[@]} -gt 0 ] || { echo "no PyTorch to compare with (--no-system without --venv)" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$netc" "$here/models/lenet5_fashion.net" -o "$tmp/lenet"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "$("$netc" --version 2> /dev/null | head -1), epochs $epochs, train images: ${limit/#0/all}"
echo "W5 base case (LeNet-5, tanh, avgpool, Adam 0.001) on Fashion-MNIST"
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine slows every side)"
for i in "${!peer_names[@]}"; do
    echo "peer ${peer_names[$i]}: torch $(torch_version "${peer_pythons[$i]}") under ${peer_pythons[$i]} ($("${peer_pythons[$i]}" --version 2>&1))"
done
limit_args=() torch_limit=()
if [ "$limit" -gt 0 ]; then limit_args=(--train-limit "$limit") torch_limit=(--limit "$limit"); fi

header=$(printf '%-7s %-5s %11s %8s' threads batch netc_img/s netc_acc)
for name in "${peer_names[@]}"; do header+=$(printf ' %15s %7s %8s' "$name"_img/s ratio acc); done
echo "$header"
best() { tr ' ' '\n' | sed '/^$/d' | sort -g | tail -1; }
field() { sed -n "s/.*$1=\\([0-9.e+-]*\\).*/\\1/p"; }
for t in $threads_list; do
    for b in $batches; do
        netc_all="" netc_acc=""
        declare -A peer_all=() peer_acc=()
        for r in $(seq "$repeat"); do
            rm -rf "$tmp/run"
            "$tmp/lenet" train --batch "$b" --epochs "$epochs" --threads "$t" "${limit_args[@]}" --out "$tmp/run" --quiet > /dev/null
            netc_all="$netc_all $(sed -n 's/.*"images_per_second": \([0-9.e+]*\).*/\1/p' "$tmp/run/summary.json")"
            netc_acc=$(sed -n 's/.*"test_accuracy": \([0-9.e+]*\).*/\1/p' "$tmp/run/summary.json")
            for i in "${!peer_names[@]}"; do
                line=$("${peer_pythons[$i]}" "$here/bench/torch_lenet5_fashion.py" --batch "$b" --threads "$t" \
                    --epochs "$epochs" "${torch_limit[@]}")
                peer_all[$i]="${peer_all[$i]:-} $(echo "$line" | field images_per_sec)"
                peer_acc[$i]=$(echo "$line" | field test_acc)
            done
        done
        netc_ips=$(echo "$netc_all" | best)
        row=$(awk -v t="$t" -v b="$b" -v n="$netc_ips" -v a="$netc_acc" \
            'BEGIN { printf "%-7s %-5s %11.0f %7.2f%%", t, b, n, 100 * a }')
        spread="netc$netc_all"
        for i in "${!peer_names[@]}"; do
            ips=$(echo "${peer_all[$i]}" | best)
            row+=$(awk -v n="$netc_ips" -v p="$ips" -v a="${peer_acc[$i]}" \
                'BEGIN { printf " %15.0f %6.2fx %7.2f%%", p, n / p, 100 * a }')
            spread+="; ${peer_names[$i]}${peer_all[$i]}"
        done
        echo "$row"
        if [ "$repeat" -gt 1 ]; then echo "        all runs: $spread"; fi
        unset peer_all peer_acc
    done
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
