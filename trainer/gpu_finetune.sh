#!/usr/bin/env bash
# The encoder fine-tuning recipe on a GPU machine, in one command that stays under LIMIT seconds (default 540, for a
# 10-minute cap; estimated 6-9 minutes on an H100/H200 for Flickr8k, see trainer/README.md "Fine-tuning the encoder"):
#   1. features of every captioned image with the base encoder (trainer.finetune --write-features, PyTorch on the GPU)
#   2. the XE decoder until early stopping (trainer.train, --feature-norm layernorm, batch 128), unless WORK_DIR/init is
#      given
#   3. fine-tuning of the last BLOCKS encoder block(s) + the decoder with augmentation (trainer.finetune)
#   4. logs and fp16 parts (<= 15 MB each) to $OUT, to export here with
#      python3 -m trainer.finetune --export OUT/ft --out models/NAME --captions captions.json --encoder resnet50.onnx
# If LIMIT ends a stage early, run the same command again while the machine is warm: every stage resumes.
#
# Usage: bash trainer/gpu_finetune.sh [WORK_DIR]   (run from the repo root; WORK_DIR default /tmp/px)
#   WORK_DIR/img/            the images of captions.json (Flickr8k: 224x224 JPEGs; needs Pillow)
#   WORK_DIR/captions.json   pixel-info prepare's captions
#   WORK_DIR/resnet50.onnx   the product's converted encoder (or its chunks WORK_DIR/part_*, joined here)
#   WORK_DIR/init            optional: the XE decoder to start from (.pt or fp16 parts directory)
# Environment: LIMIT, OUT (default WORK_DIR/out), BLOCKS (1), ENC_LR (1e-5), DEC_LR (1e-4), EPOCHS (10), PATIENCE (3),
#   BATCH_IMAGES (32), XE_EPOCHS (25), XE_SHARE (percent of LIMIT for XE, 45), TRAIN_IMAGES / VAL_IMAGES (0: all),
#   DEVICE (auto), THREADS (nproc), XE_ARGS / FT_ARGS (more options for trainer.train / trainer.finetune), PYTHON.
set -euo pipefail
T0=$(date +%s)
PY=${PYTHON:-python3}
W=${1:-/tmp/px}
LIMIT=${LIMIT:-540}
OUT=${OUT:-$W/out}
BLOCKS=${BLOCKS:-1}
DEVICE=${DEVICE:-auto}
THREADS=${THREADS:-$(nproc)}
export PYTHONUNBUFFERED=1
left() { echo $(( LIMIT - ($(date +%s) - T0) )); }
# run NAME PATTERN CMD...: the whole output to WORK_DIR/NAME.log (and $OUT), the lines matching PATTERN on screen,
# the log's tail if the command fails (then this script fails too, after step 4)
FAILED=0
run() {
  local name=$1 pattern=$2; shift 2
  local rc=0
  "$@" > "$W/$name.log" 2>&1 || rc=$?
  grep -E "$pattern" "$W/$name.log" || true
  cp "$W/$name.log" "$OUT/" 2>/dev/null || true
  if [ $rc != 0 ]; then echo "!! $name failed (exit $rc):"; tail -25 "$W/$name.log"; FAILED=1; fi
  return $rc
}
mkdir -p "$OUT" "$W/runs"
$PY -c "import sys, torch, numpy; print('python', sys.version.split()[0], 'torch', torch.__version__, 'numpy', numpy.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
$PY -c "import PIL; print('Pillow', PIL.__version__)"
echo "images: $(ls "$W/img" | wc -l), cores: $(nproc)"
if [ ! -f "$W/resnet50.onnx" ]; then cat "$W"/part_* > "$W/resnet50.onnx"; fi
sha256sum "$W/resnet50.onnx"

echo "== 1. features ($(left)s left)"
if [ ! -f "$W/store/index.json" ]; then
  run features '^\[features\] /' $PY -m trainer.finetune --write-features "$W/store" --images "$W/img" \
    --captions "$W/captions.json" --encoder "$W/resnet50.onnx" --device "$DEVICE" --threads "$THREADS" || exit 1
fi

INIT="$W/init"
copy_xe() {
  mkdir -p "$OUT/xe"
  cp "$W/runs/xe/log.jsonl" "$W/runs/xe/run.json" "$OUT/xe/" 2>/dev/null || true
  if [ -d "$W/runs/xe/best-fp16" ]; then mkdir -p "$OUT/xe/best-fp16"; cp "$W/runs/xe/best-fp16/"* "$OUT/xe/best-fp16/"; fi
}
if [ ! -e "$INIT" ]; then
  echo "== 2. XE decoder ($(left)s left)"
  R=""; [ -f "$W/runs/xe/last.pt" ] && R="--resume"
  XE_LIMIT=$(( $(left) * ${XE_SHARE:-45} / 100 ))
  run xe '^\[(xe epoch|xe\]|done|resume)' $PY -m trainer.train --features "$W/store" --captions "$W/captions.json" \
    --out "$W/runs/xe" --epochs "${XE_EPOCHS:-25}" --patience 3 --batch-size 128 --feature-norm layernorm \
    --device "$DEVICE" --time-limit "$XE_LIMIT" --log-every 1000 $R ${XE_ARGS:-} || { copy_xe; exit 1; }
  copy_xe
  DONE=$($PY -c "import torch; print(int(torch.load('$W/runs/xe/last.pt', map_location='cpu')['stage_done']))")
  if [ "$DONE" != 1 ]; then
    echo "XE stopped by the time limit: run the same command again (it resumes)"; exit 0
  fi
  INIT="$W/runs/xe/xe_best.pt"
fi

echo "== 3. fine-tuning, blocks: $BLOCKS ($(left)s left)"
R=""; [ -f "$W/runs/ft/last.pt" ] && R="--resume"
run finetune '^\[(finetune|encoder|data|resume)' $PY -m trainer.finetune --images "$W/img" --captions "$W/captions.json" \
  --init "$INIT" --encoder "$W/resnet50.onnx" --out "$W/runs/ft" --finetune-blocks "$BLOCKS" \
  --encoder-lr "${ENC_LR:-1e-5}" --decoder-lr "${DEC_LR:-1e-4}" --epochs "${EPOCHS:-10}" --patience "${PATIENCE:-3}" \
  --batch-images "${BATCH_IMAGES:-32}" --train-images "${TRAIN_IMAGES:-0}" --val-images "${VAL_IMAGES:-0}" \
  --device "$DEVICE" --threads "$THREADS" --time-limit "$(( $(left) - 15 ))" --log-every 50 $R ${FT_ARGS:-} || true

echo "== 4. results to $OUT ($(left)s left)"
mkdir -p "$OUT/ft"
cp "$W/runs/ft/log.jsonl" "$W/runs/ft/run.json" "$OUT/ft/" 2>/dev/null || true
for d in best-fp16 encoder-fp16; do
  if [ -d "$W/runs/ft/$d" ]; then mkdir -p "$OUT/ft/$d"; cp "$W/runs/ft/$d/"* "$OUT/ft/$d/"; fi
done
$PY - "$W/runs/ft/log.jsonl" <<'EOF' || true
import json, sys
recs = [json.loads(x) for x in open(sys.argv[1])]
for r in recs:
    v = r.get("val", {})
    print(f"epoch {r['epoch']}: val CIDEr-D {v.get('cider', float('nan')):.4f} BLEU-4 {v.get('bleu4', float('nan')):.4f}"
          f" {r.get('s_per_step', '')} s/step {r.get('time_s', '')} s")
EOF
du -sh "$OUT"/* 2>/dev/null || true
echo "total $(( $(date +%s) - T0 ))s"
exit $FAILED
