#!/bin/sh
# Opens a sample report.html in headless Chromium and checks the screenshot:
# the page renders (not one flat colour) and its pictures load (the first
# series colour of curves.png shows up). Skips where no Chromium is installed.
# test_rt_plot writes the sample files and reads the screenshot's pixels.
browser=
for b in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
if [ -z "$browser" ]; then
    echo "1..0 # SKIP no chromium"
    exit 0
fi
plot=${TEST_RT_PLOT:-tests/unit/test_rt_plot}
if [ ! -x "$plot" ]; then
    echo "Bail out! $plot is not built"
    exit 1
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/netc-shot-XXXXXX") || { echo "Bail out! mktemp failed"; exit 1; }
trap 'rm -rf "$dir"' EXIT INT TERM

echo 1..4
failed=0
check() {   # check NUMBER DESCRIPTION COMMAND...
    n=$1 what=$2
    shift 2
    if "$@"; then echo "ok $n - $what"; else echo "not ok $n - $what"; failed=$((failed + 1)); fi
}
check 1 "sample report and pictures written" "$plot" --sample "$dir"
# Its own profile directory keeps Chromium away from $HOME; timeout guards a hung browser.
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$dir/profile" --window-size=1200,2000 \
    --screenshot="$dir/shot.png" "file://$dir/report.html" >"$dir/browser.log" 2>&1
check 2 "$browser took a screenshot" test -s "$dir/shot.png"
check 3 "screenshot is not blank" "$plot" --not-blank "$dir/shot.png"
check 4 "pictures load in the page (series blue visible)" "$plot" --has-colour "$dir/shot.png" 0072B2
if [ "$failed" -ne 0 ]; then sed 's/^/# /' "$dir/browser.log" | tail -20; fi
exit "$failed"
