#!/bin/sh
# The GPU fusion plan (netc --print-kernels) and the CUDA source
# (netc --emit-cuda) agree: every kernel the plan launches is defined in the
# source, and the plan's count of kernels is the source's. Over every model
# in models/ and the fixtures made for it. Needs no CUDA toolkit.
set -u
srcdir=${srcdir:-.}
netc=${NETC:-$PWD/compiler/netc}
case $netc in /*) ;; *) netc=$PWD/$netc ;; esac
cd "$srcdir" || exit 99
. tests/lib.sh
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
n=0
failed=0
tap_detail=cat
for f in models/*.net tests/fixtures/cuda_*.net; do
    [ -e "$f" ] || continue
    if ! "$netc" --print-kernels --color=never "$f" > "$tmp/plan" 2> "$tmp/err" ||
        ! "$netc" --emit-cuda --color=never "$f" > "$tmp/src" 2>> "$tmp/err"; then
        report fail "$f: plan and source" "$tmp/err"
        continue
    fi
    # the kernels the source defines, and those the plan launches (not cuBLAS, not views)
    sed -n 's/^extern "C" __global__ void \(__launch_bounds__([A-Z_]*) \)\{0,1\}\([A-Za-z0-9_]*\)(.*/\2/p' "$tmp/src" | sort -u > "$tmp/defined"
    awk 'NR > 2 && $2 !~ /^(cublas|\()/ { print $2 }' "$tmp/plan" | sort -u > "$tmp/launched"
    comm -13 "$tmp/defined" "$tmp/launched" > "$tmp/missing"
    # Nothing launched (a plan this script no longer reads) would pass vacuously.
    [ -s "$tmp/launched" ] || echo "no kernel launch read from the plan" > "$tmp/missing"
    if [ -s "$tmp/missing" ]; then
        report fail "$f: every kernel the plan launches is in the source" "$tmp/missing"
    else
        report ok "$f: every kernel the plan launches is in the source"
    fi
    said=$(sed -n '1s/.*: \([0-9]*\) kernels in the CUDA source.*/\1/p' "$tmp/plan")
    have=$(wc -l < "$tmp/defined" | tr -d ' ')
    if [ "$said" = "$have" ]; then
        report ok "$f: the plan counts the source's $have kernels"
    else
        echo "plan: $said, source: $have" > "$tmp/count"
        report fail "$f: the plan counts the source's kernels" "$tmp/count"
    fi
done
if [ "$n" = 0 ]; then
    echo "Bail out! no models/*.net or tests/fixtures/cuda_*.net in $PWD: nothing was checked"
    exit 99
fi
echo "1..$n"
[ "$failed" = 0 ]
