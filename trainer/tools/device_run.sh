#!/usr/bin/env bash
# Training on a borrowed GPU machine that has PyTorch and onnxruntime but no Node and a 64 MiB
# limit on what each call carries. The images and the converted encoder travel in chunks
# (.devdata/xferN, made by the lead) and are unpacked to /tmp/px, which lives while the machine is warm.
#   unpack N        unpack chunk N
#   start SECONDS   join the encoder, extract features (same ONNX graph, same store format as
#                   `pixel-info features`), then train configs A and B side by side until SECONDS have passed
#   resume SECONDS  continue both runs; both: copy logs and fp16 parts of best.pt to $OUT
set -euo pipefail
T0=$(date +%s)
W=/tmp/px
export PYTHONUNBUFFERED=1
mkdir -p $W/img
case "$1" in
unpack)
  for f in .devdata/xfer$2/*; do
    case "$f" in *.tar) tar xf "$f" -C $W/img ;; *) cp "$f" $W/ ;; esac
  done
  echo "images: $(ls $W/img | wc -l)"; ls $W
  ;;
start)
  cat $W/part_aa $W/part_ab > $W/resnet50.onnx
  sha256sum $W/resnet50.onnx
  nproc; nvidia-smi -L
  ls $W/img > $W/names.txt
  python3 -m trainer.tools.extract_features_ort --model $W/resnet50.onnx --images $W/img --names $W/names.txt \
    --out $W/store --batch 32 --threads "$(nproc)" 2>&1 | tail -4
  ;&
resume)
  LIMIT=$(( ${2:-540} - ($(date +%s) - T0) ))
  echo "training for at most ${LIMIT}s"
  R=""; [ "$1" = resume ] && R="--resume"
  COMMON="--features $W/store --captions $W/captions.json --epochs 25 --patience 4 --scst-epochs 20 --batch-size 128 --time-limit $LIMIT --log-every 1000 $R"
  python3 -m trainer.train $COMMON --out $W/runs/A > $W/A.log 2>&1 &
  python3 -m trainer.train $COMMON --out $W/runs/B --feature-norm layernorm > $W/B.log 2>&1 &
  wait || true
  for r in A B; do
    echo "== $r"; grep -v '^\[.*batch' $W/$r.log | tail -8
    mkdir -p "$OUT/$r"; cp $W/runs/$r/log.jsonl "$OUT/$r/" 2>/dev/null || true
    cp $W/runs/$r/best-fp16/* "$OUT/$r/" 2>/dev/null || true
  done
  ;;
esac
