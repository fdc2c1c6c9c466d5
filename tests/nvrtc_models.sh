#!/bin/bash
# The CUDA source netc emits for every model in models/ compiles with NVRTC
# for sm_80 and sm_90 (no GPU needed): two TAP lines per model, with the
# compile time, and ptxas' registers and spills of every kernel as comments;
# a compile error or any spill fails the line. Skipped when configure found
# no CUDA toolkit (then the driver tests/nvrtc_models is not built).
set -u
srcdir=${srcdir:-.}
netc=${NETC:-$PWD/compiler/netc}
driver=${NVRTC_MODELS:-$PWD/tests/nvrtc_models}
case $netc in /*) ;; *) netc=$PWD/$netc ;; esac
case $driver in /*) ;; *) driver=$PWD/$driver ;; esac
if [ ! -x "$driver" ]; then
    echo "1..0 # SKIP no CUDA toolkit: configure found none, so $driver was not built"
    exit 0
fi
cd "$srcdir" || exit 99
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
n=0
failed=0
for f in models/*.net tests/fixtures/cuda_*.net; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .net)
    if ! "$netc" --emit-cuda --color=never "$f" > "$tmp/$name.cu" 2> "$tmp/err"; then
        for arch in 80 90; do
            n=$((n + 1)); failed=$((failed + 1))
            echo "not ok $n - $name compiles for sm_$arch (netc --emit-cuda failed)"
        done
        sed 's/^/# /' "$tmp/err"
        continue
    fi
    "$driver" "$tmp/$name.cu" "$name" > "$tmp/out" 2>&1
    while IFS= read -r line; do
        case $line in
            "ok - "*) n=$((n + 1)); echo "ok $n - ${line#ok - }" ;;
            "not ok - "*) n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - ${line#not ok - }" ;;
            *) echo "$line" ;;
        esac
    done < "$tmp/out"
done
echo "1..$n"
[ "$failed" = 0 ]
