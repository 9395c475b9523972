#!/usr/bin/env bash
# The device check: every method one epoch on CUDA (the GPU tests), then RTE with bf16 on a roberta-base-shaped
# encoder (speed, memory) and on MiniLM (scores). Prints one line of figures per run.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
export ALPHAVIL_DATA_DIR=$PWD/.gpu/data ALPHAVIL_CACHE_DIR=/tmp/cache HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=disabled
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, pytorch_lightning as pl; print('torch', torch.__version__, 'transformers', transformers.__version__, 'lightning', pl.__version__)"
timeout 240 python3 -m pytest -q -p no:cacheprovider -m "" tests/test_methods.py -k gpu 2>&1 | tail -6 | tee $OUT/gpu_tests.txt
python3 .gpu/make_roberta.py /tmp/roberta_shape 2>&1 | tail -1
COMMON="task=glue_rte task.auxiliaries=[mrpc] logger=none callbacks=none trainer=gpu trainer.enable_progress_bar=false trainer.enable_model_summary=false"
summary() { python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(sys.argv[1].split("/")[-2], {k: r.get(k) for k in ("target_dev", "target_test", "dev_history", "epoch_seconds", "peak_memory_mb", "optimizer_steps", "examples_seen", "schedule")})
PY
}
for m in single_task uniform alphavil; do
  timeout 150 python3 -m src.run $COMMON model=encoder model.pretrained=/tmp/roberta_shape method=$m trainer.max_epochs=1 hydra.run.dir=/tmp/runs/roberta_$m > /tmp/runs_roberta_$m.log 2>&1 || tail -20 /tmp/runs_roberta_$m.log
  cp /tmp/runs/roberta_$m/results.json $OUT/roberta_$m.json 2>/dev/null && summary /tmp/runs/roberta_$m/results.json
done
timeout 150 python3 -m src.run $COMMON model=minilm method=single_task trainer.max_epochs=5 hydra.run.dir=/tmp/runs/minilm_single_task > /tmp/minilm.log 2>&1 || tail -20 /tmp/minilm.log
cp /tmp/runs/minilm_single_task/results.json $OUT/minilm_single_task.json 2>/dev/null && summary /tmp/runs/minilm_single_task/results.json
