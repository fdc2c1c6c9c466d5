#!/bin/bash
# CPU benchmark: how much slower netc trains when another program keeps one core
# busy (issue 11's goal: at most 1.5x). Each round trains one epoch of every case
# twice, on a quiet machine and with a shell loop (`while :; do :; done`) running
# beside it, back to back, so that a change in the machine's load touches both;
# the slowdown is the median quiet images/s over the median busy images/s.
# Not a test: run it by hand, on a machine nothing else is using.
#
#   bench/cpu_busy.sh [--build DIR] [--workload "w5 w6"] [--threads N] [--rounds N]
#                     [--train-limit N] [--cifar-data DIR]
#
# Cases: w5 (models/lenet5_fashion.net on Fashion-MNIST) at batches 32 and 100,
# w6 (models/cifar_hw02.net on CIFAR-10, --data DIR: --cifar-data, default
# $NETC_DATA, else data/cifar10 in this tree) at batch 128. --threads defaults to
# the number of CPUs (2 on the project's machine), --rounds to 5. --build DIR names
# an out-of-tree build (its compiler/netc); built without sanitizers.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: $0 [--build DIR] [--workload \"w5 w6\"] [--threads N] [--rounds N] [--train-limit N] [--cifar-data DIR]"
build=$here workloads="w5 w6" threads=$(nproc) rounds=5 limit=0
cifar_data=${NETC_DATA:-$here/data/cifar10}
while [ $# -gt 0 ]; do
    case $1 in
    --build) build=$(cd "$2" 2> /dev/null && pwd) || { echo "$0: no build folder '$2'" >&2; exit 2; }; shift 2 ;;
    --workload) workloads=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --train-limit) limit=$2; shift 2 ;;
    --cifar-data) cifar_data=$2; shift 2 ;;
    *) echo "$usage" >&2; exit 2 ;;
    esac
done
netc=$build/compiler/netc
[ -x "$netc" ] || { echo "no $netc: build netc first, or name the build with --build DIR" >&2; exit 1; }
cases=()
for w in $workloads; do
    case $w in
    w5) cases+=("w5 32" "w5 100") ;;
    w6) cases+=("w6 128") ;;
    *) echo "$0: unknown workload '$w' (w5, w6)" >&2; exit 2 ;;
    esac
done

tmp=$(mktemp -d)
busy_pid=""
stop_busy() { if [ -n "$busy_pid" ]; then kill "$busy_pid" 2> /dev/null || true; wait "$busy_pid" 2> /dev/null || true; busy_pid=""; fi; }
trap 'stop_busy; rm -rf "$tmp"' EXIT
"$netc" "$here/models/lenet5_fashion.net" -o "$tmp/w5"
"$netc" "$here/models/cifar_hw02.net" -o "$tmp/w6"

# One epoch of case "$1" ("w5 32"); prints its images/s.
train_once() {
    local w=${1% *} b=${1#* } args=()
    [ "$w" = w6 ] && args=(--data "$cifar_data")
    [ "$limit" -gt 0 ] && args+=(--train-limit "$limit")
    rm -rf "$tmp/run"
    "$tmp/$w" train "${args[@]}" --batch "$b" --epochs 1 --threads "$threads" --test-limit 100 \
        --out "$tmp/run" --quiet > /dev/null
    sed -n 's/.*"images_per_second": \([0-9.]*\).*/\1/p' "$tmp/run/summary.json" | head -1 | awk '{ printf "%.0f", $1 }'
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$("$netc" --version | head -1); $threads threads; $rounds rounds; train images: ${limit/#0/all}"
declare -A quiet busy
for r in $(seq "$rounds"); do
    for c in "${cases[@]}"; do
        quiet[$c]="${quiet[$c]:-} $(train_once "$c")"
        bash -c 'while :; do :; done' &
        busy_pid=$!
        busy[$c]="${busy[$c]:-} $(train_once "$c")"
        stop_busy
    done
done

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf '\n%-9s %-5s %12s %12s %9s\n' workload batch quiet_img/s busy_img/s slowdown
for c in "${cases[@]}"; do
    q=$(echo "${quiet[$c]}" | median) s=$(echo "${busy[$c]}" | median)
    printf '%-9s %-5s %12.0f %12.0f %8.2fx\n' "${c% *}" "${c#* }" "$q" "$s" "$(awk -v q="$q" -v s="$s" 'BEGIN { print q / s }')"
done
echo
echo "all runs (images/s, in round order):"
for c in "${cases[@]}"; do echo "  $c quiet:${quiet[$c]}"; echo "  $c busy: ${busy[$c]}"; done
