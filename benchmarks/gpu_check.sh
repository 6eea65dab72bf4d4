#!/usr/bin/env bash
# The GPU path, proven on a CUDA machine (issue 31), in one bounded script:
#   1. the test suite's device-sensitive tests (`pytest -m device`) on cuda: training, mixed
#      batches equal each row alone, bf16 serving, and every tuner test marked `device`;
#   2. a short LiST job (the `fast` budget on sst-2) on cuda;
#   3. the serving benchmark: listserve over HTTP on cuda and the in-process ceiling of its
#      forward (`benchmarks.peers`), the GPU's name in each record.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]              # on a CUDA machine
#   bash benchmarks/gpu_check.sh --cpu-dry-run [OUT_DIR] # the same selection on CPU, quickly
#
# OUT_DIR (default $OUT, else /tmp/gpu-check) receives at most 8 files: the test log and
# JUnit XML, the LiST job's record, the serving records, the card (nvidia-smi) and a summary.
# PYTHON picks the interpreter (default: .venv/bin/python where it exists, else python3).
set -uo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=0
if [ "${1:-}" = "--cpu-dry-run" ]; then
    DRY_RUN=1
    shift
fi
OUT_DIR=${1:-${OUT:-/tmp/gpu-check}}
mkdir -p "$OUT_DIR"
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if [ "$DRY_RUN" = 1 ]; then
    DEVICE=cpu
    CARD="cpu (dry run)"
    LIST_ARGS=(--unlabeled-cap 50 --set teacher_steps=3 --set sessions=1
        --set unlabeled_steps=3 --set labeled_steps=2)
    PEER_ARGS=(--listserve-tasks 1,4 --concurrency 1,16 --duration 1 --warmup 0.5
        --ceiling-sizes 1,4 --ceiling-distinct 4)
else
    DEVICE=cuda
    if ! CARD=$("$PYTHON" -c 'import torch; assert torch.cuda.is_available(); print(torch.cuda.get_device_name(0))'); then
        echo "no CUDA device visible to torch: run with --cpu-dry-run on a machine without one" >&2
        exit 2
    fi
    nvidia-smi >"$OUT_DIR/card.txt" 2>&1 || true
    LIST_ARGS=(--unlabeled-cap 2000)
    PEER_ARGS=(--listserve-tasks 1,32 --concurrency 1,16,64 --duration 5 --warmup 2)
fi
SLUG=$(printf '%s' "$CARD" | tr -c 'A-Za-z0-9' '-' | tr -s '-' | sed 's/-$//')
echo "device $DEVICE: $CARD" | tee "$OUT_DIR/summary.txt"
status=0

step() {  # step NAME COMMAND...: run one step, note its exit status in the summary
    local name=$1
    shift
    local started=$SECONDS
    "$@"
    local code=$?
    echo "$name: exit $code in $((SECONDS - started)) s" | tee -a "$OUT_DIR/summary.txt"
    [ "$code" = 0 ] || status=1
}

step device-tests env LISTSERVE_TEST_DEVICE=$DEVICE "$PYTHON" -m pytest -m device -q \
    -p no:cacheprovider --junitxml "$OUT_DIR/device-tests.xml" -o junit_suite_name="$SLUG" \
    >"$OUT_DIR/device-tests.log" 2>&1
tail -n 3 "$OUT_DIR/device-tests.log"

step list-job "$PYTHON" -m benchmarks.accuracy --tasks sst-2 --methods list --seeds 1 \
    --budget fast --device "$DEVICE" --force --out "$OUT_DIR/list_job.jsonl" "${LIST_ARGS[@]}"

step serving "$PYTHON" -m benchmarks.peers run --peers listserve \
    --server-env "LISTSERVE_DEVICE=$DEVICE" --workdir "${TMPDIR:-/tmp}/gpu-check-peers" \
    --run-id "gpu-check-$SLUG" --out "$OUT_DIR/peers.jsonl" "${PEER_ARGS[@]}"

echo "overall: exit $status" | tee -a "$OUT_DIR/summary.txt"
exit $status
