#!/bin/sh
# tests/gpu/test_kernels (every CUDA kernel against the CPU backend) on the
# CUDA emulator, in launch order and again with every launch's blocks and
# threads reversed (a result that changes is a race). One TAP stream: the
# second run's checks are renumbered after the first's.
# NETC_TEST_SEED replays a failure's inputs (each run prints its seed).
set -u
prog=${TEST_KERNELS:-tests/gpu/test_kernels}
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
NETC_CUDA=emu "$prog" > "$tmp/forward" 2>&1
forward=$?
NETC_CUDA=emu NETC_EMU_ORDER=reverse "$prog" > "$tmp/reverse" 2>&1
reverse=$?
awk '
    FNR == 1 && NR != 1 { print "# with NETC_EMU_ORDER=reverse"; prefix = "reverse order: " }
    /^1\.\.[0-9]+$/ { next }
    /^Bail out!/ { print; bail = 1; next }
    /^(not )?ok [0-9]+ / {
        n++
        not = ($1 == "not") ? "not " : ""
        sub(/^(not )?ok [0-9]+ - /, "")
        print not "ok " n " - " prefix $0
        next
    }
    { print }
    END { if (n == 0) print "Bail out! test_kernels ran no check"; else print "1.." n }' "$tmp/forward" "$tmp/reverse"
checks=$(grep -c '^\(not \)\{0,1\}ok ' "$tmp/forward" "$tmp/reverse" | awk -F: '{ s += $2 } END { print s + 0 }')
[ $forward = 0 ] && [ $reverse = 0 ] && [ "$checks" -gt 0 ]
