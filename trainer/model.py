"""Show, Attend and Tell (Xu et al. 2015) soft-attention LSTM decoder over a 7x7x2048 ResNet feature map.

Same structure as sgrvinod's a-PyTorch-Tutorial-to-Image-Captioning decoder:
  attention   e = full_att(relu(encoder_att(F) + decoder_att(h)))  → alpha = softmax over the 49 regions
  context     z = f_beta gate (sigmoid(W h)) * sum_k alpha_k F_k
  LSTMCell    on [embedding(token); z]
  h0, c0      linear(mean of the 49 region features)
  output      log_softmax(fc(dropout(h)))

The ONNX export is exactly the two methods `init` and `step` (docs/formats.md, "Decoder model directory"), so what the
TypeScript beam search runs is what was trained. Teacher-forced training calls the same step in a loop.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, fields
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

Tensor = torch.Tensor


@dataclass
class ModelConfig:
    vocab_size: int
    embed_dim: int = 512
    hidden_dim: int = 512
    attention_dim: int = 512
    feature_dim: int = 2048
    dropout: float = 0.5
    # "none": raw ResNet features as in the paper; "layernorm": LayerNorm over the 2048 channels of each region
    feature_norm: str = "none"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class ShowAttendTell(nn.Module):
    def __init__(self, cfg: ModelConfig):
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

    def init(self, features: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """features [B,49,2048] → (proj_features [B,49,A], h [B,H], c [B,H])."""
        return self._init_normalized(self.normalize(features))

    def step(self, tokens: Tensor, h: Tensor, c: Tensor, features: Tensor, proj_features: Tensor
             ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """One decoding step from raw features: tokens [N] → (log_probs [N,V], h [N,H], c [N,H], alpha [N,49])."""
        logits, h, c, alpha = self.step_logits(tokens, h, c, self.normalize(features), proj_features)
        return F.log_softmax(logits.float(), dim=-1), h, c, alpha

    # --- training / decoding helpers --------------------------------------------------------------------------------

    def normalize(self, features: Tensor) -> Tensor:
        return self.feature_norm(features) if self.feature_norm is not None else features

    def step_logits(self, tokens: Tensor, h: Tensor, c: Tensor, feats: Tensor, proj: Tensor
                    ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """The step on already-normalised features, returning logits (training uses them with cross-entropy)."""
        e = self.full_att(torch.relu(proj + self.decoder_att(h).unsqueeze(1))).squeeze(2)  # [N,49]
        alpha = torch.softmax(e, dim=1)
        context = torch.bmm(alpha.unsqueeze(1).to(feats.dtype), feats).squeeze(1)  # [N,2048]
        gate = torch.sigmoid(self.f_beta(h))
        x = torch.cat([self.embedding(tokens), gate * context], dim=1)
        if x.is_cuda and _autocast_on():
            # the recurrent state stays float32 under bf16 autocast: 8 mantissa bits would drift over 20 steps
            with torch.autocast(device_type="cuda", enabled=False):
                h, c = self.lstm(x.float(), (h.float(), c.float()))
        else:
            h, c = self.lstm(x, (h, c))
        logits = self.fc(self.dropout(h))
        return logits, h, c, alpha

    def forward(self, features: Tensor, ids: Tensor) -> Tuple[Tensor, Tensor]:
        """Teacher forcing. features [B,49,2048], ids [B,T+1] starting with <start> → logits [B,T,V], alpha [B,T,49]."""
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
        B = features.size(0)
        tokens = torch.full((B,), start, dtype=torch.long, device=features.device)
        done = torch.zeros(B, dtype=torch.bool, device=features.device)
        seqs, logps = [], []
        for _ in range(max_len):
            logits, h, c, _ = self.step_logits(tokens, h, c, feats, proj)
            logp = F.log_softmax(logits.float() / temperature, dim=-1)
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


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _autocast_on() -> bool:
    try:
        return torch.is_autocast_enabled("cuda")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_enabled()


def autocast(enabled: bool):
    """bf16 autocast on CUDA, or nothing (torch 1.13 probes CUDA even for a disabled autocast)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
