#!/bin/bash
# End to end, one TAP line per check: netc compiles models/lenet5_fashion.net,
# the program trains on a small cut of Fashion-MNIST (the loss falls, the
# accuracy is far above chance), resumes to the same weights as an
# uninterrupted run, tests saved weights, and fails cleanly on corrupt or
# missing data, a NaN loss and bad command lines; hostile names in a .net
# file or its path cannot inject code into the generated program.
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

check() {  # description command...: ok when the command succeeds
    local what=$1
    shift
    if "$@" > "$tmp/why" 2>&1; then report ok "$what"; else report fail "$what" "$tmp/why"; fi
}

fashion=${NETC_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
need_fashion_mnist "$fashion"

# A cut of the real data: the first 3,000 training and 1,000 test images.
data=$tmp/data/fashion-mnist
mkdir -p "$data"
python3 - "$fashion" "$data" <<'EOF' || { echo "Bail out! cannot cut Fashion-MNIST"; exit 99; }
import gzip, struct, sys
src, dst = sys.argv[1], sys.argv[2]
for split, count in (("train", 3000), ("t10k", 1000)):
    with gzip.open(f"{src}/{split}-images-idx3-ubyte.gz") as f:
        magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
        pixels = f.read(count * rows * cols)
    with gzip.open(f"{dst}/{split}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", magic, count, rows, cols) + pixels)
    with gzip.open(f"{src}/{split}-labels-idx1-ubyte.gz") as f:
        magic, n = struct.unpack(">II", f.read(8))
        labels = f.read(count)
    with open(f"{dst}/{split}-labels-idx1-ubyte", "wb") as f:   # raw, to cover both forms
        f.write(struct.pack(">II", magic, count) + labels)
EOF

prog=$tmp/lenet
check "netc compiles models/lenet5_fashion.net into a program" "$netc" models/lenet5_fashion.net -o "$prog"
check "the program's --help names its commands" sh -c "'$prog' --help | grep -q 'test --weights FILE'"

common=(--data "$tmp/data" --threads 2 --batch 50)
"$prog" train "${common[@]}" --epochs 2 --out "$tmp/run" > "$tmp/train.out" 2>&1
rc=$?
train_rc=$rc  # the checks of this run's directory and log below need it to have succeeded
if [ $rc = 0 ]; then report ok "train 2 epochs on 3,000 images"; else report fail "train 2 epochs (exit $rc)" "$tmp/train.out"; fi

# metrics.csv: epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,lr,seconds
if awk -F, 'NR == 2 { l1 = $2 } NR == 3 { l2 = $2 } END { exit !(NR == 3 && l2 < l1) }' "$tmp/run/metrics.csv" 2> /dev/null; then
    report ok "the training loss falls from epoch 1 to epoch 2"
else
    cp "$tmp/run/metrics.csv" "$tmp/why" 2> /dev/null || echo "no metrics.csv" > "$tmp/why"
    report fail "the training loss falls from epoch 1 to epoch 2" "$tmp/why"
fi
acc=$(sed -n 's/.*"test_accuracy": \([0-9.]*\).*/\1/p' "$tmp/run/summary.json" 2> /dev/null)
if [ -n "$acc" ] && awk -v a="$acc" 'BEGIN { exit !(a > 0.6) }'; then
    report ok "test accuracy $acc is far above chance (0.1)"
else
    report fail "test accuracy far above chance (got '${acc:-none}')" "$tmp/train.out"
fi
check "the log has one line per epoch" test "$(grep -c '^epoch [12]/2  train loss' "$tmp/train.out")" = 2
check "the run holds checkpoints and records" test -s "$tmp/run/last.safetensors" -a -s "$tmp/run/model.safetensors" \
    -a -s "$tmp/run/summary.json" -a -s "$tmp/run/metrics.csv"
# Files are written as NAME.tmp.PID and renamed; none may be left, hidden or in RUN/test/.
if [ "$train_rc" = 0 ] && [ -d "$tmp/run" ] && find "$tmp/run" -name '*.tmp*' > "$tmp/leftover" 2>&1 &&
    [ ! -s "$tmp/leftover" ]; then
    report ok "nothing temporary is left in the run directory"
else
    echo "training exit status $train_rc; temporary files (or find's error):" > "$tmp/why"
    cat "$tmp/leftover" >> "$tmp/why" 2> /dev/null
    report fail "nothing temporary is left in the run directory" "$tmp/why"
fi

# Reports: the pictures are PNG files and report.html shows only files that exist.
png_ok() { [ "$(head -c 8 "$1" 2> /dev/null | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; }
bad=""
for f in loss accuracy samples confusion; do png_ok "$tmp/run/$f.png" || bad="$bad $f.png"; done
if [ -z "$bad" ]; then report ok "the run directory holds the curves, sample and confusion pictures as PNG"
else echo "not PNG or missing:$bad" > "$tmp/why"; report fail "the run's pictures are PNG files" "$tmp/why"; fi
refs=$(grep -o 'src="[^"]*"' "$tmp/run/report.html" 2> /dev/null | sed 's/src="//; s/"$//')
missing=""
for f in $refs; do [ -f "$tmp/run/$f" ] || missing="$missing $f"; done
if [ -n "$refs" ] && [ -z "$missing" ] && grep -q '</html>' "$tmp/run/report.html"; then
    report ok "report.html is complete and shows $(echo $refs | wc -w) pictures that exist"
else
    echo "references: $refs; missing:$missing" > "$tmp/why"
    report fail "report.html references existing pictures" "$tmp/why"
fi

# The thread count does not change the weights, bit for bit: a variant with
# BatchNorm (whole-batch statistics across micro-batches), relu and max
# pooling (run as one fused pass) and dropout, at a batch that leaves a
# short last batch, on 1, 2 and 3 threads.
"$netc" models/lenet5_fashion.net -D batchnorm=true -D dropout=true -D act=relu -D pool=maxpool -o "$tmp/bn" \
    > "$tmp/bn.out" 2>&1
for t in 1 2 3; do
    "$tmp/bn" train --data "$tmp/data" --threads $t --batch 48 --epochs 2 --test-limit 100 \
        --out "$tmp/threads$t" >> "$tmp/bn.out" 2>&1 || echo "exit $? with --threads $t" >> "$tmp/bn.out"
done
if cmp -s "$tmp/threads1/model.safetensors" "$tmp/threads2/model.safetensors" &&
    cmp -s "$tmp/threads1/model.safetensors" "$tmp/threads3/model.safetensors"; then
    report ok "training on 1, 2 and 3 threads gives the same weights, bit for bit"
else
    report fail "training on 1, 2 and 3 threads gives the same weights, bit for bit" "$tmp/bn.out"
fi

# Resume: 1 epoch on one thread, then --resume to 2 on two, gives the
# uninterrupted run's weights bit for bit, without a warning.
"$prog" train "${common[@]}" --threads 1 --epochs 1 --out "$tmp/half" > "$tmp/half.out" 2>&1 &&
    "$prog" train "${common[@]}" --epochs 2 --out "$tmp/half" --resume > "$tmp/resume.out" 2>&1
rc=$?
if [ $rc = 0 ] && cmp -s "$tmp/run/model.safetensors" "$tmp/half/model.safetensors" &&
    ! grep -q "warning" "$tmp/resume.out"; then
    report ok "a resumed run (1 thread, then 2) ends with the same weights as an uninterrupted one"
else
    cat "$tmp/half.out" "$tmp/resume.out" > "$tmp/why"
    report fail "a resumed run (1 thread, then 2) ends with the same weights as an uninterrupted one (exit $rc)" "$tmp/why"
fi
check "the resumed run's metrics.csv has both epochs once" \
    bash -c "test \$(wc -l < '$tmp/half/metrics.csv') = 3 && cmp -s <(cut -d, -f1-7 '$tmp/run/metrics.csv') <(cut -d, -f1-7 '$tmp/half/metrics.csv')"
"$prog" train "${common[@]}" --epochs 2 --out "$tmp/run" > "$tmp/again.out" 2>&1
rc=$?
if [ $rc = 1 ] && grep -q "already holds a run" "$tmp/again.out"; then
    report ok "training into a finished run's directory without --resume is refused"
else
    report fail "training into a finished run's directory is refused (exit $rc)" "$tmp/again.out"
fi

# test --weights reproduces the run's final test accuracy.
"$prog" test "${common[@]}" --weights "$tmp/run/model.safetensors" > "$tmp/test.out" 2>&1
want=$(awk -v a="$acc" 'BEGIN { printf "%.2f%%", 100 * a }')
if [ -n "$acc" ] && grep -q "clean *$want" "$tmp/test.out"; then
    report ok "test --weights gives the run's test accuracy ($want)"
else
    report fail "test --weights gives the run's test accuracy ($want)" "$tmp/test.out"
fi

if [ -f "$tmp/run/test/report.html" ] && grep -q 'loss.png' "$tmp/run/report.html"; then
    report ok "test --weights puts its report in RUN/test/, leaving the training report alone"
else
    report fail "test --weights puts its report in RUN/test/" "$tmp/test.out"
fi
"$prog" train "${common[@]}" --epochs 1 --out "$tmp/half" --resume > "$tmp/short.out" 2>&1
rc=$?
if [ $rc = 1 ] && grep -q "cannot shorten" "$tmp/short.out"; then
    report ok "--resume refuses --epochs below the epochs already trained"
else
    report fail "--resume refuses --epochs below the epochs already trained (exit $rc)" "$tmp/short.out"
fi

# Checkpoint metadata is checked field by field before it is used (batch 0
# used to crash with SIGFPE), and a checkpoint of another model is refused.
refused() {  # description exit-status pattern command...: ok when it exits so and says pattern
    local what=$1 want=$2 pattern=$3
    shift 3
    "$@" > "$tmp/why" 2>&1
    local rc=$?
    if [ $rc = "$want" ] && grep -q -- "$pattern" "$tmp/why"; then report ok "$what"
    else echo "exit $rc, wanted $want and '$pattern'" >> "$tmp/why"; report fail "$what" "$tmp/why"; fi
}
cat > "$tmp/setmeta.py" <<'PY'
import json, struct, sys
# setmeta.py IN OUT key=value ...: IN with metadata fields set ("key=" removes one)
src, dst = sys.argv[1], sys.argv[2]
b = open(src, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
for kv in sys.argv[3:]:
    k, v = kv.split("=", 1)
    if v: h["__metadata__"][k] = v
    else: h["__metadata__"].pop(k, None)
t = json.dumps(h).encode()
t += b" " * (-len(t) % 8)
open(dst, "wb").write(struct.pack("<Q", len(t)) + t + b[8 + n:])
PY
resume_with() {  # key=value ...: resume a copy of $tmp/half whose checkpoint has these metadata fields
    rm -rf "$tmp/ck" && cp -r "$tmp/half" "$tmp/ck" &&
        python3 "$tmp/setmeta.py" "$tmp/half/last.safetensors" "$tmp/ck/last.safetensors" "$@" &&
        "$prog" train "${common[@]}" --epochs 3 --out "$tmp/ck" --resume
}
refused "--resume refuses a checkpoint with batch 0, naming the file and field" 1 \
    "ck/last.safetensors: metadata field 'batch' is 0" resume_with batch=0
refused "--resume refuses a checkpoint with step -5" 1 "metadata field 'step' is -5" resume_with step=-5
refused "--resume refuses a checkpoint with lr nan" 1 "metadata field 'lr' is 'nan', not a number" resume_with lr=nan
refused "--resume refuses a checkpoint with threads 'abc'" 1 "metadata field 'threads' is 'abc', not a whole number" \
    resume_with threads=abc
refused "--resume refuses a checkpoint without its epoch" 1 "metadata field 'epoch' is missing" resume_with epoch=
refused "--resume refuses a checkpoint of another model with the same tensor shapes" 1 \
    "holds weights of model 'lenet5_mnist', not of 'lenet5_fashion'" resume_with model=lenet5_mnist
ln -s fashion-mnist "$tmp/data/mnist"
mnist=$tmp/lenet_mnist
"$netc" models/lenet5_mnist.net -o "$mnist" > "$tmp/why" 2>&1 &&
    "$mnist" train "${common[@]}" --epochs 1 --train-limit 200 --test-limit 100 --quiet --out "$tmp/mnistrun" > "$tmp/why" 2>&1 ||
    report fail "train models/lenet5_mnist.net" "$tmp/why"
refused "test --weights refuses lenet5_mnist's weights in lenet5_fashion" 1 "holds weights of model 'lenet5_mnist'" \
    "$prog" test "${common[@]}" --weights "$tmp/mnistrun/model.safetensors"
rm -rf "$tmp/ck" && cp -r "$tmp/half" "$tmp/ck"
python3 "$tmp/setmeta.py" "$tmp/mnistrun/last.safetensors" "$tmp/ck/last.safetensors" model=lenet5_fashion
refused "a checkpoint whose layer table differs is refused, naming the layer and option" 1 \
    "layer 10 (fc1): init is pytorch in the checkpoint, xavier_uniform in this model" \
    "$prog" train "${common[@]}" --epochs 3 --out "$tmp/ck" --resume
refused "a checkpoint from before layer tables resumes, with a note on what is checked" 0 \
    "older netc without the layer table" resume_with layers=
"$prog" train "${common[@]}" --epochs 1 --train-limit 600 --out "$tmp/lim" > "$tmp/why" 2>&1 ||
    report fail "train --train-limit 600" "$tmp/why"
refused "--resume takes --train-limit from the checkpoint" 0 "train 600 images" \
    "$prog" train "${common[@]}" --epochs 2 --out "$tmp/lim" --resume
refused "--resume refuses another --train-limit" 1 "was trained with --train-limit 600" \
    "$prog" train "${common[@]}" --epochs 3 --train-limit 300 --out "$tmp/lim" --resume
python3 - "$tmp/run/model.safetensors" "$tmp/nan.safetensors" <<'PY'
import json, struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", b[:8])[0]
begin = json.loads(b[8:8 + n])["fc1.weight"]["data_offsets"][0]
b[8 + n + begin + 4 * 7:8 + n + begin + 4 * 8] = struct.pack("<f", float("nan"))
open(sys.argv[2], "wb").write(b)
PY
refused "test --weights refuses weights holding NaN, naming the tensor and index" 1 \
    "tensor 'fc1.weight' holds NaN at index 7" "$prog" test "${common[@]}" --weights "$tmp/nan.safetensors"

# Options and resources, checked before training starts.
"$prog" train "${common[@]}" --epochs 1 --train-limit 600 --test-limit 100 --batch 1000000 --out "$tmp/bigbatch" > "$tmp/why" 2>&1
rc=$?
if [ $rc = 0 ] && grep -q "batch 1000000 is more than the 600 training images an epoch has; using batch 600" "$tmp/why" &&
    grep -q '"batch": 600' "$tmp/bigbatch/summary.json"; then
    report ok "--batch 1000000 on 600 images is capped at 600 with a note"
else
    report fail "--batch 1000000 on 600 images is capped at 600 (exit $rc)" "$tmp/why"
fi
if [ -d /proc/self ]; then
    "$prog" train "${common[@]}" --epochs 1 --out /proc/self > "$tmp/why" 2>&1
    rc=$?
    if [ $rc = 1 ] && grep -q "the run directory /proc/self cannot hold files" "$tmp/why" && ! grep -q "^epoch" "$tmp/why"; then
        report ok "an unwritable --out is refused before training"
    else
        report fail "an unwritable --out is refused before training (exit $rc)" "$tmp/why"
    fi
else
    echo "ok $((n += 1)) # SKIP no /proc/self to stand for an unwritable directory"
fi
refused "--out '' is a usage error (exit 2)" 2 "--out needs a directory, not an empty string" "$prog" train --out ""
refused "--threads above the core count is warned about" 0 "warning: 999 threads on a machine with" \
    "$prog" train "${common[@]}" --threads 999 --epochs 1 --train-limit 100 --test-limit 100 --quiet --out "$tmp/threads"

# Broken inputs: clear errors naming the file, never a crash.
cp -r "$tmp/data" "$tmp/bad"
head -c 1000 "$data/train-labels-idx1-ubyte" > "$tmp/bad/fashion-mnist/train-labels-idx1-ubyte"
"$prog" train --data "$tmp/bad" --epochs 1 --out "$tmp/badrun" > "$tmp/bad.out" 2>&1
rc=$?
if [ $rc = 1 ] && grep -q "train-labels-idx1-ubyte" "$tmp/bad.out" && [ ! -e "$tmp/badrun" ]; then
    report ok "a truncated label file is an error naming it, and leaves no run directory"
else
    report fail "a truncated label file is an error naming it, leaving no run directory (exit $rc)" "$tmp/bad.out"
fi
mkdir -p "$tmp/empty"
(cd "$tmp/empty" && NETC_DATA="$tmp/empty" "$prog" train --data "$tmp/empty" --epochs 1 --out "$tmp/norun/a/b") > "$tmp/missing.out" 2>&1
rc=$?
if [ $rc = 1 ] && grep -q "get-data" "$tmp/missing.out" && grep -q "$tmp/empty" "$tmp/missing.out" && [ ! -e "$tmp/norun" ]; then
    report ok "a missing dataset is an error listing where it looked and how to get it, and leaves no directory"
else
    report fail "a missing dataset is an error listing where it looked, leaving no directory (exit $rc)" "$tmp/missing.out"
fi
mkdir -p "$tmp/empty/runs/keep"
for cmd in train sweep; do
    (cd "$tmp/empty" && "$prog" $cmd --data "$tmp/empty" --epochs 1) > "$tmp/missing-$cmd.out" 2>&1
    rc=$?
    if [ $rc = 1 ] && [ "$(ls "$tmp/empty/runs")" = keep ]; then
        report ok "$cmd without its dataset leaves no run directory in runs/, and what was there stays"
    else
        report fail "$cmd without its dataset leaves no run directory in runs/ (exit $rc; runs/: $(ls "$tmp/empty/runs" | tr '\n' ' '))" "$tmp/missing-$cmd.out"
    fi
done
rm -rf "$tmp/empty/runs"
printf 'NETC' > "$tmp/bad.safetensors"
"$prog" test "${common[@]}" --weights "$tmp/bad.safetensors" > "$tmp/badw.out" 2>&1
rc=$?
if [ $rc = 1 ] && grep -q "bad.safetensors" "$tmp/badw.out"; then
    report ok "corrupt weights are an error naming the file"
else
    report fail "corrupt weights are an error naming the file (exit $rc)" "$tmp/badw.out"
fi

# test --weights draws the test-side pictures into --out.
"$prog" test "${common[@]}" --weights "$tmp/run/model.safetensors" --out "$tmp/testpics" > "$tmp/why" 2>&1
if png_ok "$tmp/testpics/samples.png" && png_ok "$tmp/testpics/confusion.png" && [ -f "$tmp/testpics/report.html" ]; then
    report ok "test --weights writes the sample grid, confusion matrix and report.html"
else
    report fail "test --weights writes the test pictures" "$tmp/why"
fi

# A sweep: every point trained once (a point equal to an earlier one is not
# trained again), one directory each, a table, sweep.csv and a plot per sweep.
cat > "$tmp/tiny.net" <<'EOF'
param lr = 0.01
param act = relu
sweep lr = [0.003, 0.01]
sweep act = [relu, tanh]
sweep lr, act = [[0.01, tanh]]
model tiny {
    input = [1, 28, 28]
    classes = 10
    conv1: conv(4, kernel=5, stride=2)
    act1:  $act
    flat:  flatten
    fc:    dense(10)
}
data {
    dataset = fashion_mnist
    validation = 200
}
train {
    epochs = 1
    batch = 50
    optimizer = sgd(lr=$lr, momentum=0.9)
}
EOF
"$netc" "$tmp/tiny.net" -o "$tmp/tiny" > "$tmp/why" 2>&1 || report fail "netc compiles a model with sweeps" "$tmp/why"
"$tmp/tiny" sweep --data "$tmp/data" --threads 2 --train-limit 600 --test-limit 300 --out "$tmp/deep/er/sweep" > "$tmp/sweep.out" 2>&1
rc=$?
rows=$(tail -n +2 "$tmp/deep/er/sweep/sweep.csv" 2> /dev/null | wc -l)
trained=$(ls -d "$tmp/deep/er/sweep"/0*-* 2> /dev/null | wc -l)
if [ $rc = 0 ] && [ "$rows" = 5 ] && [ "$trained" = 3 ] && [ "$(grep -c "not trained again" "$tmp/sweep.out")" = 2 ]; then
    report ok "sweep: 5 points, 3 trained (two equal earlier points), 5 rows in sweep.csv"
else
    report fail "sweep runs every point (exit $rc, $rows rows, $trained runs)" "$tmp/sweep.out"
fi
if png_ok "$tmp/deep/er/sweep/sweep-lr.png" && png_ok "$tmp/deep/er/sweep/sweep-act.png" && grep -q "^act  *tanh" "$tmp/sweep.out"; then
    report ok "sweep: the results table and one plot per sweep"
else
    report fail "sweep: the results table and one plot per sweep" "$tmp/sweep.out"
fi
"$tmp/tiny" sweep --sweep width --data "$tmp/data" --out "$tmp/sweep2" > "$tmp/why" 2>&1
rc=$?
if [ $rc = 1 ] && grep -q "no sweep 'width'; its sweeps are 'lr', 'act', 'lr, act'" "$tmp/why"; then
    report ok "sweep --sweep with an unknown name lists the sweeps"
else
    report fail "sweep --sweep with an unknown name lists the sweeps (exit $rc)" "$tmp/why"
fi
cut -d, -f1-5 "$tmp/deep/er/sweep/sweep.csv" > "$tmp/sweep.before" 2> /dev/null
sweep_resumes() {  # description: sweep --resume finds its 3 trained points finished, with the same results
    "$tmp/tiny" sweep --resume --data "$tmp/data" --threads 2 --train-limit 600 --test-limit 300 --out "$tmp/deep/er/sweep" > "$tmp/resume.out" 2>&1
    local rc=$?
    cut -d, -f1-5 "$tmp/deep/er/sweep/sweep.csv" > "$tmp/sweep.after" 2> /dev/null
    if [ $rc = 0 ] && [ "$(grep -c 'finished earlier' "$tmp/resume.out")" = 3 ] && cmp -s "$tmp/sweep.before" "$tmp/sweep.after"; then
        report ok "$1"
    else
        report fail "$1 (exit $rc)" "$tmp/resume.out"
    fi
}
sweep_resumes "sweep --resume keeps finished points and their results"
# sweep --resume reads summary.json with the JSON reader: the same results
# from the same data written another way (compact, keys sorted), and a
# damaged file is an error naming it and the offset.
python3 - "$tmp/deep/er/sweep" <<'PY'
import glob, json, sys
for path in glob.glob(sys.argv[1] + "/*/summary.json"):
    with open(path) as f:
        data = json.load(f)
    with open(path, "w") as f:
        json.dump(data, f, sort_keys=True, separators=(",", ":"))
PY
sweep_resumes "sweep --resume reads summary.json as JSON, not as text of one layout"
damaged=$(ls "$tmp"/deep/er/sweep/*/summary.json | head -1)
cp "$damaged" "$tmp/summary.saved"
printf '{"status": "trained", "test_accuracy": 0.5,' > "$damaged"
refused "sweep --resume refuses a damaged summary.json, naming it and the offset" 1 \
    "summary.json: offset 43: file ends inside an object" \
    "$tmp/tiny" sweep --resume --data "$tmp/data" --threads 2 --train-limit 600 --test-limit 300 --out "$tmp/deep/er/sweep"
cp "$tmp/summary.saved" "$damaged"
# --sweep selects by name; a joint sweep by any of its names.
"$tmp/tiny" sweep --sweep act --data "$tmp/data" --threads 2 --train-limit 600 --test-limit 300 --out "$tmp/deep/er/sweep" --resume > "$tmp/only.out" 2>&1
rc=$?
if [ $rc = 0 ] && [ "$(grep -c '^== ' "$tmp/only.out")" = 3 ] && grep -q '^== 3/3: lr, act = ' "$tmp/only.out"; then
    report ok "sweep --sweep act runs the act sweep and the joint lr, act sweep"
else
    report fail "sweep --sweep act selects by name (exit $rc)" "$tmp/only.out"
fi

# netc --sweep replaces the file's sweeps.
"$netc" --sweep 'act=[tanh, sigmoid]' --emit-c "$tmp/tiny.net" > "$tmp/cl.c" 2> "$tmp/why"
rc=$?
if [ $rc = 0 ] && grep -q '{ "act", "sigmoid", ' "$tmp/cl.c" && ! grep -q '{ "lr", ' "$tmp/cl.c" &&
    [ "$(grep -c '^    { "' "$tmp/cl.c")" = 2 ]; then
    report ok "netc --sweep gives the program's sweeps instead of the file's"
else
    report fail "netc --sweep gives the program's sweeps" "$tmp/why"
fi

# A model stuck at chance level is told so (W4's deep MLP sat at 11% for epochs).
"$netc" -D opt=sgd -D lr=1e-7 models/lenet5_fashion.net -o "$tmp/stuck" > "$tmp/why" 2>&1
"$tmp/stuck" train "${common[@]}" --epochs 1 --train-limit 1000 --out "$tmp/stuckrun" > "$tmp/stuck.out" 2>&1
if grep -q "chance level: the model is not learning yet" "$tmp/stuck.out"; then
    report ok "a loss stuck at ln(classes) gets a note saying the model is not learning"
else
    report fail "a loss stuck at ln(classes) gets a note" "$tmp/stuck.out"
fi
# Only a run that trained its two epochs can show the note's absence.
if [ "$train_rc" = 0 ] && [ "$(grep -c '^epoch [12]/2  train loss' "$tmp/train.out")" = 2 ] &&
    ! grep -q "chance level" "$tmp/train.out"; then
    report ok "no chance-level note for a model that learns"
else
    report fail "no chance-level note for a model that learns (training exit status $train_rc)" "$tmp/train.out"
fi

# A diverging run stops with exit status 3 and says where.
nanprog=$tmp/lenet_sgd
"$netc" -D act=relu -D opt=sgd -D lr=1e30 models/lenet5_fashion.net -o "$nanprog" > "$tmp/why" 2>&1 ||
    report fail "netc -D act=relu -D opt=sgd -D lr=1e30" "$tmp/why"
"$nanprog" train "${common[@]}" --epochs 1 --out "$tmp/nanrun" > "$tmp/nan.out" 2>&1
rc=$?
if [ $rc = 3 ] && grep -Eq "loss became (NaN|infinite) at epoch 1, step [0-9]+" "$tmp/nan.out"; then
    report ok "a NaN loss stops training with exit status 3, naming epoch and step"
else
    report fail "a NaN loss stops training with exit status 3 (exit $rc)" "$tmp/nan.out"
fi

# Command-line mistakes exit 2; --device cuda without a usable GPU says why.
"$prog" train --epochs zero > "$tmp/cli.out" 2>&1
rc=$?
if [ $rc = 2 ] && grep -q "epochs needs a whole number" "$tmp/cli.out"; then report ok "a bad --epochs is a usage error"
else report fail "a bad --epochs is a usage error (exit $rc)" "$tmp/cli.out"; fi
"$prog" train --device cuda "${common[@]}" --out "$tmp/cuda" > "$tmp/cuda.out" 2>&1
rc=$?
if [ $rc = 1 ] && grep -q -- "--device cuda: " "$tmp/cuda.out"; then report ok "--device cuda fails with a clear message"
else report fail "--device cuda fails with a clear message (exit $rc)" "$tmp/cuda.out"; fi

# -S keeps the generated C beside the program.
check "-S keeps the generated C as PROGRAM.c" sh -c "'$netc' -S models/lenet5_fashion.net -o '$tmp/kept' && test -x '$tmp/kept' && grep -q nr_main '$tmp/kept.c'"

# Hostile names: quotes, backslashes, newlines, comment ends, trigraphs and
# format directives in the file's path, its data path and a -D value all
# arrive in the program as the exact bytes written, never as code.
evil_dir=$tmp/'we"ird \ dir'
mkdir -p "$evil_dir"
evil="$evil_dir/"'a"b\c??=*%n%s$(touch PWNED)'$'\n''x.net'
cat > "$evil" <<'EOF'
param tag = "\"); system(\"touch PWNED\"); (\"*/ ??/ %n %s \\"
sweep tag = ["*/ #error injected /*", "\n#error injected\n"]
model m {
    input = [1, 28, 28]
    classes = 10
    flat: flatten
    out: dense(10)
}
data {
    dataset = folder
    path = "/nonexistent/\"); system(\"touch PWNED\"); /* ??= \\ %s\n"
}
EOF
(cd "$tmp" && "$netc" -D 'tag="x\"y"' "$evil" -o "$tmp/evil") > "$tmp/evil.out" 2>&1
rc=$?
if [ $rc = 0 ] && [ ! -e "$tmp/PWNED" ] && [ ! -e PWNED ]; then
    "$tmp/evil" --help > "$tmp/evil.help" 2>&1
    if grep -qF 'a"b\c??=*%n%s$(touch PWNED)' "$tmp/evil.help" && [ ! -e "$tmp/PWNED" ]; then
        report ok "hostile names reach the program as data, not code"
    else
        report fail "hostile names reach the program as data" "$tmp/evil.help"
    fi
    (cd "$tmp" && "$tmp/evil" train --epochs 1 --out "$tmp/evilrun") > "$tmp/evil.run" 2>&1
    if grep -qF '/nonexistent/"); system("touch PWNED"); /* ??= \ %s' "$tmp/evil.run" && [ ! -e "$tmp/PWNED" ]; then
        report ok "a hostile data path is reported verbatim and nothing runs"
    else
        report fail "a hostile data path is reported verbatim" "$tmp/evil.run"
    fi
else
    report fail "netc compiles a model with hostile names (exit $rc)" "$tmp/evil.out"
fi

echo "1..$n"
[ "$failed" = 0 ]
