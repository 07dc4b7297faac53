"""Pixel Info decoder trainer (PyTorch): decoders over the TypeScript feature store, exported to ONNX.

Modules: data (feature store + captions.json), models (the architecture registry; show-attend-tell), train (XE + SCST),
decoding (the beam search and its rules, the same as the TypeScript search), cider (CIDEr-D/BLEU as pycocoevalcap),
metrics / evaluate (val decoding), glove, checkpoint (fp16 parts), export (ONNX), parity (fixture + check).
Importing the package imports nothing heavy, so `python3 -m trainer.parity` runs without torch.
"""
