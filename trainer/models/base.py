"""What every decoder architecture provides, and helpers they share.

A decoder is an nn.Module with a `cfg` (its config dataclass, with `to_dict()` / `from_dict()`) and:

  forward(features, ids) -> (logits [B,T,V], alpha [B,T,R])     teacher forcing (cross-entropy training)
  sample(features, start, end, max_len, greedy=False, generator=None) -> (ids [B,max_len], log-probs [B,max_len])
                                                                  SCST sampling and its greedy baseline
  init_state(features) -> state                                   the step-state interface of the beam search
  step_state(tokens [N] long, state) -> (log_probs [N,V] float, alpha [N,R], new_state)
  ONNX_GRAPHS, onnx_function(graph), export_examples(seed)        what trainer.export writes (see export.py)

A state is a dict of tensors whose first dimension is rows (one row per live beam); the search picks rows with
`select_rows`, so the model never needs to know which beam is which.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

State = Dict[str, torch.Tensor]


def select_rows(state: State, rows: torch.Tensor) -> State:
    """The same rows (in the given order, repeats allowed) of every tensor of a step state."""
    return {k: v[rows] for k, v in state.items()}  # plain indexing: much faster than index_select on CPU


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def autocast_on() -> bool:
    try:
        return torch.is_autocast_enabled("cuda")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_enabled()


def autocast(enabled: bool):
    """bf16 autocast on CUDA, or nothing (torch 1.13 probes CUDA even for a disabled autocast)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16)


def sample_sequences(step: Callable[[torch.Tensor], torch.Tensor], batch: int, device, start: int, end: int,
                     max_len: int, greedy: bool = False, temperature: float = 1.0,
                     generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """The sampling loop every architecture's `sample` shares (SCST and its greedy baseline). `step(tokens [B])` feeds
    one token per row and returns logits [B,V] (the architecture keeps its own state in the closure). Returns ids
    [B,max_len] (<end> repeated after the first <end>) and the log-probabilities of the chosen tokens [B,max_len]
    (0 after <end>), differentiable when grad is enabled."""
    tokens = torch.full((batch,), start, dtype=torch.long, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    seqs, logps = [], []
    for _ in range(max_len):
        logp = F.log_softmax(step(tokens).float() / temperature, dim=-1)
        if greedy:
            tokens = logp.argmax(dim=-1)
        else:
            tokens = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)
        chosen = logp.gather(1, tokens.unsqueeze(1)).squeeze(1)
        tokens = torch.where(done, torch.full_like(tokens, end), tokens)
        logps.append(torch.where(done, torch.zeros_like(chosen), chosen))
        seqs.append(tokens)
        done = done | (tokens == end)
        if bool(done.all()):
            break
    seqs_t = torch.stack(seqs, 1)
    logps_t = torch.stack(logps, 1)
    if seqs_t.size(1) < max_len:  # pad to a fixed width
        pad = max_len - seqs_t.size(1)
        seqs_t = F.pad(seqs_t, (0, pad), value=end)
        logps_t = F.pad(logps_t, (0, pad), value=0.0)
    return seqs_t, logps_t
