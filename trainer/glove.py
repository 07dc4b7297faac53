"""Word vectors in GloVe text format (`word v1 v2 ... vD` per line) → rows of the decoder's embedding."""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch


def read_glove(path: str, words: Sequence[str]) -> Tuple[Dict[str, List[float]], int]:
    """Vectors of the given words found in `path`, and the file's dimension. Lines that do not parse are an error."""
    wanted = set(words)
    found: Dict[str, List[float]] = {}
    dim = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip("\n").rstrip(" ").split(" ")
            if len(parts) < 2:
                continue
            if dim == 0:
                dim = len(parts) - 1
            elif len(parts) - 1 != dim:
                # some GloVe releases contain tokens with spaces; their lines have extra fields: skip them
                continue
            w = parts[0]
            if w in wanted and w not in found:
                try:
                    found[w] = [float(x) for x in parts[1:]]
                except ValueError as e:
                    raise ValueError(f"{path}:{n}: not a GloVe vector line") from e
    if dim == 0:
        raise ValueError(f"{path}: no vectors")
    return found, dim


def load_glove_into(embedding: torch.nn.Embedding, vocab: Sequence[str], path: str) -> int:
    """Copy the vectors of vocabulary words into `embedding` (other rows keep their init). Returns how many were set."""
    found, dim = read_glove(path, vocab)
    if dim != embedding.embedding_dim:
        raise ValueError(f"{path}: vectors have {dim} dimensions, the embedding has {embedding.embedding_dim} "
                         f"(use --embed-dim {dim})")
    with torch.no_grad():
        for i, w in enumerate(vocab):
            v = found.get(w)
            if v is not None:
                embedding.weight[i] = torch.tensor(v, dtype=embedding.weight.dtype)
    return sum(1 for w in vocab if w in found)
