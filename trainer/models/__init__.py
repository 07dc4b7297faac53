"""Decoder architectures, keyed by the model card's `architecture.type`.

Adding an architecture is one module in this folder (an nn.Module with the interface of base.py and a config
dataclass as `config_class`) and one entry in ARCHITECTURES. Everything else in the trainer (training, validation,
checkpoints, export, bench) builds models through `build_model` and never names a class.
"""

from __future__ import annotations

import torch.nn as nn

from .base import autocast, count_parameters, select_rows  # noqa: F401  (re-exported)
from .show_attend_tell import ShowAttendTell
from .transformer import Transformer

ARCHITECTURES = {"show-attend-tell": ShowAttendTell, "transformer": Transformer}

# What `trainer.train` trains unless told otherwise.
DEFAULT_ARCHITECTURE = "show-attend-tell"
# Checkpoints written before they recorded an architecture are all of this one.
LEGACY_ARCHITECTURE = "show-attend-tell"


def architecture_class(arch_type: str):
    if arch_type not in ARCHITECTURES:
        raise ValueError(f"unknown decoder architecture {arch_type!r} (known: {', '.join(ARCHITECTURES)})")
    return ARCHITECTURES[arch_type]


def build_model(arch_type: str, cfg) -> nn.Module:
    """A freshly initialised model of `arch_type`; `cfg` is its config object or a dict (unknown keys ignored, so a
    dict of all training arguments plus the data's geometry will do)."""
    cls = architecture_class(arch_type)
    if not isinstance(cfg, cls.config_class):
        cfg = cls.config_class.from_dict(dict(cfg))
    return cls(cfg)


def architecture_of(model: nn.Module) -> str:
    """The registry key of a model's class."""
    for name, cls in ARCHITECTURES.items():
        if type(model) is cls:
            return name
    raise ValueError(f"{type(model).__name__} is not a registered decoder architecture")
