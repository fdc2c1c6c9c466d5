#!/bin/bash
# Golden-file tests, one TAP line each:
#  - tests/diagnostics/*.net: `netc --check` stderr equals the .err beside it
#    (caret lines included), exit status 1 when it holds an error, else 0;
#  - models/*.net: check clean, and --print-shapes equals tests/golden/NAME.shapes
#    (the generated C is not golden: tests/unit/test_tables checks what its
#    tables say against the IR and the .net file, field by field);
#  - a few models: --print-kernels equals tests/golden/NAME.kernels;
#  - examples/*.net: clean, or (listed in examples/BAD) stderr equals tests/golden/NAME.err.
# Runs from the source tree so paths in diagnostics are stable.
# Set NETC_UPDATE_GOLDEN=1 to rewrite the expected files from the current output:
# then nothing is compared, so those tests are reported as skipped ("# SKIP
# updated"), never as passes; review the diff (git diff tests/).
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

tap_detail="head -40"

# compare EXPECTED ACTUAL DESCRIPTION
compare() {
    if [ "${NETC_UPDATE_GOLDEN:-}" = 1 ]; then
        if [ -f "$1" ] && cmp -s "$1" "$2"; then
            report skip "$3" "updated: $1 unchanged"
        elif cp "$2" "$1"; then
            report skip "$3" "updated: rewrote $1"
        else
            echo "cannot write $1" > "$tmp/diff"
            report fail "$3" "$tmp/diff"
        fi
        return
    fi
    if [ -f "$1" ] && diff -u "$1" "$2" > "$tmp/diff"; then
        report ok "$3"
    else
        [ -f "$1" ] || echo "missing golden file $1" > "$tmp/diff"
        report fail "$3" "$tmp/diff"
    fi
}

for f in tests/diagnostics/*.net; do
    [ -e "$f" ] || continue
    "$netc" --check --color=never "$f" > "$tmp/out" 2> "$tmp/err"
    rc=$?
    want_rc=0
    grep -q ': error: ' "${f%.net}.err" 2>/dev/null && want_rc=1
    if [ "$rc" != "$want_rc" ]; then
        echo "exit status $rc, expected $want_rc" > "$tmp/why"
        cat "$tmp/err" >> "$tmp/why"
        report fail "diagnostics of $f (exit status)" "$tmp/why"
        continue
    fi
    compare "${f%.net}.err" "$tmp/err" "diagnostics of $f"
done

for f in models/*.net; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .net)
    if "$netc" --print-shapes --color=never "$f" > "$tmp/out" 2> "$tmp/err" && [ ! -s "$tmp/err" ]; then
        compare "tests/golden/$name.shapes" "$tmp/out" "$f checks clean and its shapes match"
    else
        report fail "$f checks clean" "$tmp/err"
    fi
done

# The GPU fusion plan (netc --print-kernels) of a few models is golden too;
# that the emitted CUDA compiles is tests/nvrtc_models.sh's business.
for name in lenet5_mnist cifar_hw02 lenet5_mnist_sam mlp_mnist; do
    f=models/$name.net
    if [ ! -e "$f" ]; then
        echo "$f is gone; take $name off this list" > "$tmp/why"
        report fail "$f prints the golden fusion plan" "$tmp/why"
        continue
    fi
    if "$netc" --print-kernels --color=never "$f" > "$tmp/out" 2> "$tmp/err" && [ ! -s "$tmp/err" ]; then
        compare "tests/golden/$name.kernels" "$tmp/out" "$f prints the golden fusion plan"
    else
        report fail "$f prints its fusion plan" "$tmp/err"
    fi
done

for f in examples/*.net; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .net)
    "$netc" --check --color=never "$f" > "$tmp/out" 2> "$tmp/err"
    rc=$?
    if grep -qx "$name.net" examples/BAD 2>/dev/null; then
        if [ "$rc" != 1 ]; then
            report fail "$f has errors (exit status $rc)" "$tmp/err"
        else
            compare "tests/golden/$name.err" "$tmp/err" "diagnostics of $f"
        fi
    elif [ "$rc" = 0 ] && [ ! -s "$tmp/err" ]; then
        report ok "$f checks clean"
    else
        report fail "$f checks clean" "$tmp/err"
    fi
done

if [ "$n" = 0 ]; then
    echo "Bail out! no diagnostics, models or examples found in $PWD: nothing was checked"
    exit 99
fi
echo "1..$n"
[ "$failed" = 0 ]
