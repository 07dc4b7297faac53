"""Architecture `show-attend-tell`: the Show, Attend and Tell (Xu et al. 2015) soft-attention LSTM decoder over an
encoder's R x D feature map (R regions of D channels; 7x7x2048 for the ResNet50 encoder).

Same structure as sgrvinod's a-PyTorch-Tutorial-to-Image-Captioning decoder:
  attention   e = full_att(relu(encoder_att(F) + decoder_att(h)))  → alpha = softmax over the R regions
  context     z = f_beta gate (sigmoid(W h)) * sum_k alpha_k F_k
  LSTMCell    on [embedding(token); z]
  h0, c0      linear(mean of the R region features)
  output      log_softmax(fc(dropout(h)))

The ONNX export is exactly the two methods `init` and `step` (docs/formats.md, "Decoder model directory"), so what the
TypeScript beam search runs is what was trained: init does everything per image (feature LayerNorm, attention
projection, h0/c0), step everything per row, reading the per-image tensors through a row → image index. Teacher-forced training, sampling and the trainer's beam search
(`init_state` / `step_state`) call the same step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import State, autocast_on, sample_sequences

Tensor = torch.Tensor


@dataclass
class ShowAttendTellConfig:
    vocab_size: int
    feature_dim: int  # channels per region, from the feature store
    regions: int  # regions per image, from the feature store
    embed_dim: int
    hidden_dim: int
    attention_dim: int
    dropout: float
    # "none": raw encoder features as in the paper; "layernorm": LayerNorm over the channels of each region
    feature_norm: str = "none"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ShowAttendTellConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class ShowAttendTell(nn.Module):
    config_class = ShowAttendTellConfig
    description = "soft-attention LSTM decoder (Xu et al. 2015) over the encoder's region feature map"

    # The exported graphs (docs/formats.md): name → (input names, output names, dynamic first axis per name; "*" is
    # every other name). The TypeScript side (src/decoder/models/show-attend-tell.ts) loads decoder_<name>.onnx with
    # exactly these. Everything that depends only on the image (the feature LayerNorm, the attention projection, h0
    # and c0) is computed once by init; the step reads the per-image tensors through a row → image index, so the
    # caller never copies an image's features per beam.
    ONNX_GRAPHS = {
        "init": (["features"], ["memory", "proj_features", "h", "c"], {"*": "B"}),
        "step": (["tokens", "image", "h", "c", "memory", "proj_features"], ["log_probs", "h_out", "c_out", "alpha"],
                 {"memory": "B", "proj_features": "B", "*": "N"}),
    }

    def __init__(self, cfg: ShowAttendTellConfig):
        super().__init__()
        if cfg.feature_norm not in ("none", "layernorm"):
            raise ValueError(f"feature_norm must be 'none' or 'layernorm', not {cfg.feature_norm!r}")
        self.cfg = cfg
        Fd, A, H, E, V = cfg.feature_dim, cfg.attention_dim, cfg.hidden_dim, cfg.embed_dim, cfg.vocab_size
        self.feature_norm = nn.LayerNorm(Fd) if cfg.feature_norm == "layernorm" else None
        self.encoder_att = nn.Linear(Fd, A)
        self.decoder_att = nn.Linear(H, A)
        self.full_att = nn.Linear(A, 1)
        self.init_h = nn.Linear(Fd, H)
        self.init_c = nn.Linear(Fd, H)
        self.f_beta = nn.Linear(H, Fd)
        self.embedding = nn.Embedding(V, E)
        self.lstm = nn.LSTMCell(E + Fd, H)
        self.dropout = nn.Dropout(cfg.dropout)
        self.fc = nn.Linear(H, V)
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.uniform_(self.fc.weight, -0.1, 0.1)
        nn.init.zeros_(self.fc.bias)

    # --- the two exported functions -------------------------------------------------------------------------------

    def init(self, features: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """features [B,R,D] → (memory [B,R,D] (the normalised features), proj_features [B,R,A], h [B,H], c [B,H])."""
        memory = self.normalize(features)
        proj, h, c = self._init_normalized(memory)
        return memory, proj, h, c

    def step(self, tokens: Tensor, image: Tensor, h: Tensor, c: Tensor, memory: Tensor, proj_features: Tensor
             ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """One decoding step for N rows over B images: tokens [N], image [N] (row → image), h, c [N,H], memory [B,R,D],
        proj_features [B,R,A] → (log_probs [N,V], h [N,H], c [N,H], alpha [N,R])."""
        feats = memory.index_select(0, image)  # [N,R,D] (a Gather in the graph)
        proj = proj_features.index_select(0, image)  # [N,R,A]
        logits, h, c, alpha = self.step_logits(tokens, h, c, feats, proj)
        return F.log_softmax(logits.float(), dim=-1), h, c, alpha

    def onnx_function(self, graph: str):
        return {"init": self.init, "step": self.step}[graph]

    @torch.no_grad()
    def export_examples(self, batch: int = 2, steps: int = 3, seed: int = 0) -> Dict[str, Tensor]:
        """Inputs and outputs of both graphs, named `<graph>.<name>` (the parity fixture). ReLU-like features (the
        encoder's output is >= 0) for init; the step's N rows (N != B, to exercise both dynamic axes) point at the
        init's images in a non-trivial order, with perturbed h/c and varied tokens."""
        cfg = self.cfg
        g = torch.Generator().manual_seed(seed)
        feats = torch.relu(torch.randn(batch, cfg.regions, cfg.feature_dim, generator=g)) * 0.8
        image = torch.tensor([(batch - 1 - i) % batch for i in range(steps)], dtype=torch.long)
        tokens = torch.tensor([1] + [(5 + 7 * i) % cfg.vocab_size for i in range(1, steps)], dtype=torch.long)
        memory, proj, h, c = self.init(feats)
        sh = h[image] + 0.1 * torch.randn(h[image].shape, generator=g)
        sc = c[image] + 0.1 * torch.randn(c[image].shape, generator=g)
        lp, h2, c2, alpha = self.step(tokens, image, sh, sc, memory, proj)
        return {"init.features": feats, "init.memory": memory, "init.proj_features": proj, "init.h": h, "init.c": c,
                "step.tokens": tokens, "step.image": image, "step.h": sh, "step.c": sc, "step.memory": memory,
                "step.proj_features": proj,
                "step.log_probs": lp, "step.h_out": h2, "step.c_out": c2, "step.alpha": alpha}

    # --- the beam search's step-state interface -------------------------------------------------------------------

    def init_state(self, features: Tensor) -> State:
        """features [B,R,D] → one state row per image."""
        feats = self.normalize(features)
        proj, h, c = self._init_normalized(feats)
        return {"features": feats, "proj_features": proj, "h": h, "c": c}

    def step_state(self, tokens: Tensor, state: State) -> Tuple[Tensor, Tensor, State]:
        logits, h, c, alpha = self.step_logits(tokens, state["h"], state["c"], state["features"],
                                               state["proj_features"])
        return F.log_softmax(logits.float(), dim=-1), alpha, {**state, "h": h, "c": c}

    # --- training helpers -----------------------------------------------------------------------------------------

    def normalize(self, features: Tensor) -> Tensor:
        return self.feature_norm(features) if self.feature_norm is not None else features

    def step_logits(self, tokens: Tensor, h: Tensor, c: Tensor, feats: Tensor, proj: Tensor
                    ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """The step on already-normalised features, returning logits (training uses them with cross-entropy)."""
        e = self.full_att(torch.relu(proj + self.decoder_att(h).unsqueeze(1))).squeeze(2)  # [N,R]
        alpha = torch.softmax(e, dim=1)
        context = torch.bmm(alpha.unsqueeze(1).to(feats.dtype), feats).squeeze(1)  # [N,D]
        gate = torch.sigmoid(self.f_beta(h))
        x = torch.cat([self.embedding(tokens), gate * context], dim=1)
        if x.is_cuda and autocast_on():
            # the recurrent state stays float32 under bf16 autocast: 8 mantissa bits would drift over 20 steps
            with torch.autocast(device_type="cuda", enabled=False):
                h, c = self.lstm(x.float(), (h.float(), c.float()))
        else:
            h, c = self.lstm(x, (h, c))
        logits = self.fc(self.dropout(h))
        return logits, h, c, alpha

    def forward(self, features: Tensor, ids: Tensor) -> Tuple[Tensor, Tensor]:
        """Teacher forcing. features [B,R,D], ids [B,T+1] starting with <start> → logits [B,T,V], alpha [B,T,R]."""
        feats = self.normalize(features)
        proj, h, c = self._init_normalized(feats)
        logits, alphas = [], []
        for t in range(ids.size(1) - 1):
            lg, h, c, a = self.step_logits(ids[:, t], h, c, feats, proj)
            logits.append(lg)
            alphas.append(a)
        return torch.stack(logits, 1), torch.stack(alphas, 1)

    def _init_normalized(self, feats: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        mean = feats.mean(dim=1)
        return self.encoder_att(feats), torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean))

    @torch.no_grad()
    def greedy(self, features: Tensor, start: int, end: int, max_len: int) -> Tensor:
        """Greedy decoding → ids [B, max_len] (after <start>; <end> then padding with <end>)."""
        seqs, _ = self.sample(features, start, end, max_len, greedy=True)
        return seqs

    def sample(self, features: Tensor, start: int, end: int, max_len: int, greedy: bool = False,
               temperature: float = 1.0, generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
        """Sample (multinomial) or greedy-decode. Returns ids [B,max_len] (<end> repeated after the first <end>) and the
        log-probabilities of the chosen tokens [B,max_len] (0 after <end>), differentiable when grad is enabled."""
        feats = self.normalize(features)
        proj, h, c = self._init_normalized(feats)
        state = {"h": h, "c": c}

        def step(tokens: Tensor) -> Tensor:
            logits, state["h"], state["c"], _ = self.step_logits(tokens, state["h"], state["c"], feats, proj)
            return logits

        return sample_sequences(step, features.size(0), features.device, start, end, max_len, greedy, temperature,
                                generator)
