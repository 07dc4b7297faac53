#!/usr/bin/env bash
# Checks the trainer on a GPU machine before the real run (about 5 minutes on an H100):
# unit tests (CPU), XE/SCST throughput at the real model size, then the whole pipeline (train XE + SCST, evaluate,
# export) on a Flickr8k-sized synthetic store. Usage: bash trainer/gpu_smoke.sh [WORK_DIR]   (run from the repo root)
set -euo pipefail
PY=${PYTHON:-python3}
W=${1:-/tmp/pixel-info-gpu-smoke}
mkdir -p "$W"
$PY -c "import sys, torch, numpy; print('python', sys.version.split()[0], 'torch', torch.__version__, 'numpy', numpy.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
$PY -c "import onnxruntime" 2>/dev/null && echo "onnxruntime: yes" || echo "onnxruntime: no"
echo "== unit tests (CPU)"
$PY -m unittest discover -s trainer/tests -t . > "$W/unittest.log" 2>&1 && echo "unit tests OK" || {
  grep -v '^\[' "$W/unittest.log" | grep -A 25 -E '^(FAIL|ERROR):' | head -80; tail -3 "$W/unittest.log"; }
echo "== throughput"
$PY -m trainer.bench --device cuda --batches 30 --batch-size 128 --scst-batches 3 --scst-batch 64
echo "== synthetic Flickr8k-sized store"
[ -f "$W/syn/captions.json" ] || $PY -m trainer.bench --write-store "$W/syn"
echo "== train: 2 XE epochs + 1 SCST epoch"
rm -rf "$W/run"
$PY -m trainer.train --features "$W/syn/features" --captions "$W/syn/captions.json" --out "$W/run" \
  --epochs 2 --scst-epochs 1 --batch-size 128 --log-every 100
echo "== resume (no epochs left: must return at once)"
$PY -m trainer.train --features "$W/syn/features" --captions "$W/syn/captions.json" --out "$W/run" \
  --epochs 2 --scst-epochs 1 --batch-size 128 --resume 2>&1 | tail -3
echo "== evaluate (val, beam sweep)"
$PY -m trainer.evaluate --checkpoint "$W/run/best.pt" --features "$W/syn/features" --captions "$W/syn/captions.json" \
  --beams 1,3 --length-penalties 0,0.5 --examples 0 --out "$W/sweep.json"
echo "== export"
$PY -m trainer.export --checkpoint "$W/run/best-fp16" --captions "$W/syn/captions.json" --out "$W/model" \
  --parity-fixture "$W/parity.bin" --eval-json "$W/sweep.json"
ls -la "$W/run" "$W/run/best-fp16" "$W/model"
