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
from typing import Dict

import torch
import torch.nn as nn

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
