"""Pixel Info decoder trainer (PyTorch): Show-Attend-Tell over the TypeScript feature store, exported to ONNX.

Modules: data (feature store + captions.json), model, train (XE + SCST), cider (CIDEr-D/BLEU as pycocoevalcap),
beam / metrics / evaluate (val decoding), glove, checkpoint (fp16 parts), export (ONNX), parity (fixture + check).
Importing the package imports nothing heavy, so `python3 -m trainer.parity` runs without torch.
"""
