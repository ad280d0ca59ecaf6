#!/usr/bin/env bash
# One GPU check on a lent GPU machine, in about 8 minutes (benchmarks/gpu_check.py says what it
# measures). Runs from a copy of the repository that carries the git-ignored folder .gpu/:
#   .gpu/whl/*.whl          what such a machine lacks (jsonargparse, docstring-parser,
#                           typeshed-client, submitit), from `pip download --no-deps`
#   .gpu/cifar10-jpeg.npz   the CIFAR-10 image folder, packed by benchmarks/gpu_data.py
# installs the wheels and unpacks the data under $GPU_CHECK_SCRATCH (default $TMPDIR/gpu_check),
# runs the sections under one deadline, writes benchmarks/results/*_cuda_<gpu>*.json and copies
# them and the log (gpu_check.log) into $OUT.
#   bash benchmarks/gpu_check.sh                    # on the GPU machine
#   GPU_CHECK_TINY=1 bash benchmarks/gpu_check.sh   # CPU test of the whole script (a few minutes;
#                                                   # results under the scratch folder)
# Preparing .gpu/ (once, where the image folder is; both are listed in .git/info/exclude):
#   python benchmarks/gpu_data.py pack ../shared/data/cifar10-jpeg .gpu/cifar10-jpeg.npz
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       -d .gpu/whl jsonargparse==4.53.0 docstring-parser==0.18.0 typeshed-client==2.15.0 submitit==1.5.4
set -uo pipefail
START=$(date +%s)
cd "$(dirname "$0")/.."
TINY=${GPU_CHECK_TINY:-0}
SCRATCH=${GPU_CHECK_SCRATCH:-${TMPDIR:-/tmp}/gpu_check}
OUT=${OUT:-$SCRATCH/out}
if [ "$TINY" = 1 ]; then
    BUDGET_S=${GPU_CHECK_BUDGET_S:-900}; RESULTS=$SCRATCH/results; FLAGS=(--tiny)
else
    BUDGET_S=${GPU_CHECK_BUDGET_S:-480}; RESULTS=benchmarks/results; FLAGS=()
fi
mkdir -p "$OUT" "$SCRATCH"

main() {
    echo "gpu_check: $(date -u '+%Y-%m-%d %H:%M:%S') UTC, budget ${BUDGET_S} s, tiny=${TINY}, $(nproc) CPUs"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    if [ ! -f .gpu/cifar10-jpeg.npz ] || ! ls .gpu/whl/*.whl >/dev/null 2>&1; then
        echo "gpu_check: .gpu/cifar10-jpeg.npz or .gpu/whl/*.whl missing (see the head of this script)"; return 2
    fi
    rm -rf "$SCRATCH/site" "$SCRATCH/results" "$SCRATCH/work"
    if ! python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check \
            --root-user-action=ignore --target "$SCRATCH/site" .gpu/whl/*.whl; then
        echo "gpu_check: pip install failed: unzipping the (pure-Python) wheels instead"
        for w in .gpu/whl/*.whl; do python3 -m zipfile -e "$w" "$SCRATCH/site"; done
    fi
    export PYTHONPATH="$SCRATCH/site:$PWD" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
    export UNLEARNING_CACHE_DIR="$SCRATCH/cache"
    python3 -c "import jsonargparse, docstring_parser, typeshed_client, unlearning.cli" || return 3
    # unpacked once per pack (a rerun on the same machine keeps the images and their decoded cache)
    local stamp
    stamp=$(stat -c %s .gpu/cifar10-jpeg.npz)
    if [ "$(cat "$SCRATCH/cifar10-jpeg/.unpacked" 2>/dev/null)" != "$stamp" ]; then
        rm -rf "$SCRATCH/cifar10-jpeg" "$SCRATCH/cache"
        python3 benchmarks/gpu_data.py unpack .gpu/cifar10-jpeg.npz "$SCRATCH/cifar10-jpeg" --threads 16 || return 4
        echo "$stamp" > "$SCRATCH/cifar10-jpeg/.unpacked"
    fi
    echo "gpu_check: set up in $(( $(date +%s) - START )) s"
    timeout -k 15 $(( START + BUDGET_S + 30 - $(date +%s) )) \
        python3 -u benchmarks/gpu_check.py --root "$SCRATCH/cifar10-jpeg" --results "$RESULTS" --out "$OUT" \
        --work "$SCRATCH/work" --deadline $(( START + BUDGET_S )) ${FLAGS[@]+"${FLAGS[@]}"}
    local rc=$?
    echo "gpu_check: exit code $rc after $(( $(date +%s) - START )) s; files in the output folder: $(ls "$OUT" | tr '\n' ' ')"
    return $rc
}

main 2>&1 | tee -a "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
