"""Architecture `transformer`: a pre-LN Transformer captioning decoder over an encoder's R x D feature map (R regions
of D channels; 7x7x2048 for the ResNet50 encoder).

  memory      (LayerNorm over the D channels, `feature_norm`) → Linear D→d → + learned region embedding [R, d]
              → LayerNorm(d)                                                          [B, R, d]
  input       token embedding [V, d] + learned position embedding [max_len, d], dropout
  N layers    (pre-LN) x += SelfAttn(LN(x)) with a causal mask; x += CrossAttn(LN(x), memory); x += FFN(LN(x))
  output      LN(x) → Linear d→V, its weight tied to the token embedding (`tie_embeddings`)
  alpha       the last layer's cross-attention weights averaged over the heads: [.., R], each row sums to 1

Tied output projection: with Flickr8k's ~2.5k words and 30k training captions, the V x d output matrix is the largest
single block of the step (1 M of the parameters at d 384); sharing it with the embedding (Press & Wolf 2017; GPT-2)
halves the vocabulary parameters, regularises the rare words (each word's row learns from its inputs and outputs), and
costs nothing at inference. `tie_embeddings=False` gives a separate Linear.

Learned positions: captions are short (Flickr8k's training cut is 22 words) and every position up to the cut is seen
thousands of times. Positions from `max_len - 1` on reuse the last row (the step clamps the index), so a search longer
than max_len does not fail; it just gets no new position information.

The ONNX export (docs/formats.md, "Architecture `transformer`") is the two methods `init` and `step`:
  init   features [B,R,D] → memory [B,R,d], cross_keys, cross_values [B,L,H,R,hd]   (each layer's cross-attention
         keys/values of the image, computed once per image)
  step   tokens [N], image [N] (row → image), past_keys, past_values [N,L,H,T,hd] (the self-attention cache; T is
         the number of tokens fed before, 0 at the first step), cross_keys, cross_values [B,L,H,R,hd]
         → log_probs [N,V], past_keys_out, past_values_out [N,L,H,T+1,hd], alpha [N,R]
(L layers, H heads, hd = d / H). The cache is rows-first, so the beam search's row selection is a copy of whole rows.
Teacher-forced training (`forward`), sampling (`sample`) and the trainer's beam search (`init_state`/`step_state`)
run the same layers; `forward` equals `step` applied token by token (tests/test_transformer.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import State, sample_sequences

Tensor = torch.Tensor


@dataclass
class TransformerConfig:
    vocab_size: int
    feature_dim: int  # channels per region, from the feature store
    regions: int  # regions per image, from the feature store
    d_model: int = 384
    layers: int = 2
    heads: int = 6
    ffn_dim: int = 1536
    dropout: float = 0.1
    # "layernorm": LayerNorm over the channels of each region before the projection; "none": raw encoder features
    feature_norm: str = "layernorm"
    max_len: int = 64  # learned positions (the step clamps later positions to the last one)
    tie_embeddings: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TransformerConfig":
        """Fields by name; `tf_<name>` (trainer.train's --tf-* arguments) wins over `<name>` (the names
        show-attend-tell's arguments share, such as dropout and feature_norm). Unknown keys are ignored."""
        out = {}
        for f in fields(cls):
            if "tf_" + f.name in d:
                out[f.name] = d["tf_" + f.name]
            elif f.name in d:
                out[f.name] = d[f.name]
        return cls(**out)


class PlainLayerNorm(nn.Module):
    """LayerNorm over the last axis without a scale and shift: the projection right after it absorbs any per-channel
    affine map, and without parameters here training needs no gradient through the input of the [B,R,D] x [D,d]
    projection (about 9% of an XE step). Written out because torch 1.13 exports no affine-free LayerNormalization."""

    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x = x - x.mean(-1, keepdim=True)
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + self.eps)


class Table(nn.Module):
    """A learned [rows, dim] table used whole (the region embedding). Its weight is read in forward, so the ONNX
    export's fp16 cast hook (export.py) sees it like any other module's."""

    def __init__(self, rows: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(rows, dim) * 0.02)

    def forward(self) -> Tensor:
        return self.weight


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v/o projections, written out (Linear, MatMul, Softmax) so the same
    code serves training, the step with a cache and the ONNX export."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        if d % heads:
            raise ValueError(f"d_model {d} is not a multiple of heads {heads}")
        self.heads, self.head_dim = heads, d // heads
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.o = nn.Linear(d, d)
        self.dropout = nn.Dropout(dropout)

    def split(self, x: Tensor) -> Tensor:
        """[B,T,d] → [B,H,T,hd]"""
        return x.reshape(x.shape[0], x.shape[1], self.heads, self.head_dim).transpose(1, 2)

    def keys_values(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """[B,T,d] → k, v [B,H,T,hd] (views; `contiguous()` them to keep them for many steps)"""
        return self.split(self.k(x)), self.split(self.v(x))

    def forward(self, x: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """x [B,Tq,d] queries; k, v [B,H,Tk,hd]; mask [Tq,Tk] added to the scores → (out [B,Tq,d], probs [B,H,Tq,Tk])."""
        q = self.split(self.q(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
        if mask is not None:
            scores = scores + mask
        probs = torch.softmax(scores.float(), dim=-1).to(v.dtype)
        out = torch.matmul(self.dropout(probs), v)  # [B,H,Tq,hd]
        out = out.transpose(1, 2).reshape(x.shape[0], x.shape[1], self.heads * self.head_dim)
        return self.o(out), probs


class DecoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.ln_self = nn.LayerNorm(d)
        self.self_attn = Attention(d, heads, dropout)
        self.ln_cross = nn.LayerNorm(d)
        self.cross_attn = Attention(d, heads, dropout)
        self.ln_ffn = nn.LayerNorm(d)
        self.ffn_in = nn.Linear(d, ffn)
        self.ffn_out = nn.Linear(ffn, d)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, past_k: Optional[Tensor], past_v: Optional[Tensor], cross_k: Tensor,
                cross_v: Tensor, mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """x [B,T,d] (the new positions); past_k/v [B,H,Tp,hd] or None; cross_k/v [B,H,R,hd]; mask [T,Tp+T] or None
        → (x [B,T,d], k, v [B,H,Tp+T,hd] (the cache with the new positions), cross probs [B,H,T,R])."""
        h = self.ln_self(x)
        k, v = self.self_attn.keys_values(h)
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        a, _ = self.self_attn(h, k, v, mask)
        x = x + self.dropout(a)
        a, probs = self.cross_attn(self.ln_cross(x), cross_k, cross_v)
        x = x + self.dropout(a)
        x = x + self.dropout(self.ffn_out(self.dropout(torch.relu(self.ffn_in(self.ln_ffn(x))))))
        return x, k, v, probs


def _drop_tied_output(module, state_dict, prefix, local_metadata):
    state_dict.pop(prefix + "fc.weight", None)


def _restore_tied_output(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
    if prefix + "fc.weight" not in state_dict and prefix + "embedding.weight" in state_dict:
        state_dict[prefix + "fc.weight"] = state_dict[prefix + "embedding.weight"]


class Transformer(nn.Module):
    config_class = TransformerConfig
    description = "pre-LN Transformer decoder (masked self-attention, cross-attention over the encoder's regions)"

    # The exported graphs (docs/formats.md): name → (input names, output names, dynamic axes per name: one axis name
    # for the first axis, or {axis: name}; "*" is every other name). The TypeScript side
    # (src/decoder/models/transformer.ts) loads decoder_<name>.onnx with exactly these.
    ONNX_GRAPHS = {
        "init": (["features"], ["memory", "cross_keys", "cross_values"], {"*": "B"}),
        "step": (["tokens", "image", "past_keys", "past_values", "cross_keys", "cross_values"],
                 ["log_probs", "past_keys_out", "past_values_out", "alpha"],
                 {"cross_keys": "B", "cross_values": "B",
                  "past_keys": {0: "N", 3: "T"}, "past_values": {0: "N", 3: "T"},
                  "past_keys_out": {0: "N", 3: "T1"}, "past_values_out": {0: "N", 3: "T1"}, "*": "N"}),
    }

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        if cfg.feature_norm not in ("none", "layernorm"):
            raise ValueError(f"feature_norm must be 'none' or 'layernorm', not {cfg.feature_norm!r}")
        if cfg.max_len < 2:
            raise ValueError(f"max_len must be at least 2, not {cfg.max_len}")
        self.cfg = cfg
        d, V = cfg.d_model, cfg.vocab_size
        self.feature_norm = PlainLayerNorm() if cfg.feature_norm == "layernorm" else None
        self.feature_proj = nn.Linear(cfg.feature_dim, d)
        self.region_embedding = Table(cfg.regions, d)
        self.memory_norm = nn.LayerNorm(d)
        self.embedding = nn.Embedding(V, d)
        self.position_embedding = nn.Embedding(cfg.max_len, d)
        nn.init.normal_(self.embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.02)
        self.layers = nn.ModuleList(DecoderLayer(d, cfg.heads, cfg.ffn_dim, cfg.dropout) for _ in range(cfg.layers))
        self.ln_out = nn.LayerNorm(d)
        self.fc = nn.Linear(d, V)
        nn.init.zeros_(self.fc.bias)
        if cfg.tie_embeddings:
            self.fc.weight = self.embedding.weight
            # checkpoints hold the shared matrix once (as embedding.weight); loading puts it back into fc
            self._register_state_dict_hook(_drop_tied_output)
            self._register_load_state_dict_pre_hook(_restore_tied_output)
        self.dropout = nn.Dropout(cfg.dropout)

    @property
    def head_dim(self) -> int:
        return self.cfg.d_model // self.cfg.heads

    # --- the two exported functions -------------------------------------------------------------------------------

    def init(self, features: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """features [B,R,D] → (memory [B,R,d], cross_keys [B,L,H,R,hd], cross_values [B,L,H,R,hd])."""
        memory = self.encode(features)
        ck, cv = self.cross_keys_values(memory)
        return memory, ck, cv

    def step(self, tokens: Tensor, image: Tensor, past_keys: Tensor, past_values: Tensor, cross_keys: Tensor,
             cross_values: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """One decoding step for N rows over B images: tokens [N], image [N] (row → image), past_keys/values
        [N,L,H,T,hd], cross_keys/values [B,L,H,R,hd] → (log_probs [N,V], past_keys_out [N,L,H,T+1,hd],
        past_values_out, alpha [N,R])."""
        # each layer's cross keys/values of the B images, then the rows' images ([N,H,R,hd]; Gathers in the graph)
        cross = [(cross_keys[:, i].index_select(0, image), cross_values[:, i].index_select(0, image))
                 for i in range(self.cfg.layers)]
        past = [(past_keys[:, i], past_values[:, i]) for i in range(self.cfg.layers)]
        logits, new, alpha = self.step_logits(tokens, past, cross)
        return (F.log_softmax(logits.float(), dim=-1), torch.stack([k for k, _ in new], 1),
                torch.stack([v for _, v in new], 1), alpha)

    def onnx_function(self, graph: str):
        return {"init": self.init, "step": self.step}[graph]

    @torch.no_grad()
    def export_examples(self, batch: int = 2, steps: int = 3, seed: int = 0) -> Dict[str, Tensor]:
        """Inputs and outputs of both graphs, named `<graph>.<name>` (the parity fixture). ReLU-like features for init;
        the step's N rows (N != B) point at the init's images in a non-trivial order and carry a real cache of two
        earlier tokens (perturbed), so T, N and B all differ."""
        cfg = self.cfg
        g = torch.Generator().manual_seed(seed)
        feats = torch.relu(torch.randn(batch, cfg.regions, cfg.feature_dim, generator=g)) * 0.8
        image = torch.tensor([(batch - 1 - i) % batch for i in range(steps)], dtype=torch.long)
        memory, ck, cv = self.init(feats)
        L, H, hd = cfg.layers, cfg.heads, self.head_dim
        pk = torch.zeros(steps, L, H, 0, hd)
        pv = torch.zeros(steps, L, H, 0, hd)
        for t in range(2):
            prev = torch.tensor([1 if t == 0 else (4 + 3 * i) % cfg.vocab_size for i in range(steps)])
            _, pk, pv, _ = self.step(prev, image, pk, pv, ck, cv)
        pk = pk + 0.05 * torch.randn(pk.shape, generator=g)
        pv = pv + 0.05 * torch.randn(pv.shape, generator=g)
        tokens = torch.tensor([(5 + 7 * i) % cfg.vocab_size for i in range(steps)], dtype=torch.long)
        lp, pk2, pv2, alpha = self.step(tokens, image, pk, pv, ck, cv)
        return {"init.features": feats, "init.memory": memory, "init.cross_keys": ck, "init.cross_values": cv,
                "step.tokens": tokens, "step.image": image, "step.past_keys": pk, "step.past_values": pv,
                "step.cross_keys": ck, "step.cross_values": cv,
                "step.log_probs": lp, "step.past_keys_out": pk2, "step.past_values_out": pv2, "step.alpha": alpha}

    # --- the beam search's step-state interface -------------------------------------------------------------------

    # A state holds, per layer i, "cross_keys.i" / "cross_values.i" [N,H,R,hd] (the row's image) and "past_keys.i" /
    # "past_values.i" [N,H,T,hd] (the cache), each contiguous: a per-layer slice of one [N,L,...] tensor would be
    # copied by every attention matmul (and kept for backward in SCST sampling).

    def init_state(self, features: Tensor) -> State:
        """features [B,R,D] → one state row per image: the image's cross keys/values and an empty cache."""
        memory = self.encode(features)
        state: State = {}
        for i, layer in enumerate(self.layers):
            k, v = layer.cross_attn.keys_values(memory)
            state[f"cross_keys.{i}"], state[f"cross_values.{i}"] = k.contiguous(), v.contiguous()
            state[f"past_keys.{i}"] = state[f"past_values.{i}"] = k.new_zeros(k.shape[0], k.shape[1], 0, k.shape[3])
        return state

    def step_state(self, tokens: Tensor, state: State) -> Tuple[Tensor, Tensor, State]:
        logits, past, alpha = self.step_logits(tokens, *self._layers_of(state))
        return F.log_softmax(logits.float(), dim=-1), alpha, self._with_past(state, past)

    def _layers_of(self, state: State):
        L = range(self.cfg.layers)
        return ([(state[f"past_keys.{i}"], state[f"past_values.{i}"]) for i in L],
                [(state[f"cross_keys.{i}"], state[f"cross_values.{i}"]) for i in L])

    @staticmethod
    def _with_past(state: State, past) -> State:
        out = dict(state)
        for i, (k, v) in enumerate(past):
            out[f"past_keys.{i}"], out[f"past_values.{i}"] = k, v
        return out

    # --- shared pieces --------------------------------------------------------------------------------------------

    def encode(self, features: Tensor) -> Tensor:
        """features [B,R,D] → memory [B,R,d]."""
        x = self.feature_norm(features) if self.feature_norm is not None else features
        return self.dropout(self.memory_norm(self.feature_proj(x) + self.region_embedding()))

    def cross_keys_values(self, memory: Tensor) -> Tuple[Tensor, Tensor]:
        """memory [B,R,d] → every layer's cross-attention keys and values, [B,L,H,R,hd] each."""
        ks, vs = zip(*(layer.cross_attn.keys_values(memory) for layer in self.layers))
        return torch.stack(ks, 1), torch.stack(vs, 1)

    def embed(self, tokens: Tensor, positions: Tensor) -> Tensor:
        return self.dropout(self.embedding(tokens) + self.position_embedding(positions))

    def step_logits(self, tokens: Tensor, past: Sequence[Tuple[Tensor, Tensor]],
                    cross: Sequence[Tuple[Tensor, Tensor]]) -> Tuple[Tensor, List[Tuple[Tensor, Tensor]], Tensor]:
        """One token per row on row-aligned tensors: tokens [N], per layer past (k, v) [N,H,T,hd] and cross (k, v)
        [N,H,R,hd] → (logits [N,V], per layer the cache (k, v) [N,H,T+1,hd], alpha [N,R])."""
        # the position of the new token is the cache length T (a Shape in the graph), clamped to the table
        pos = torch.clamp(torch.zeros_like(tokens) + past[0][0].shape[2], max=self.cfg.max_len - 1)
        x = self.embed(tokens, pos).unsqueeze(1)  # [N,1,d]
        new: List[Tuple[Tensor, Tensor]] = []
        probs = None
        for layer, (pk, pv), (ck, cv) in zip(self.layers, past, cross):
            x, k, v, probs = layer(x, pk, pv, ck, cv)
            new.append((k, v))
        logits = self.fc(self.ln_out(x.squeeze(1)))
        alpha = probs.squeeze(2).float().mean(1)  # [N,H,1,R] → [N,R]
        return logits, new, alpha

    def forward(self, features: Tensor, ids: Tensor) -> Tuple[Tensor, Tensor]:
        """Teacher forcing. features [B,R,D], ids [B,T+1] starting with <start> → logits [B,T,V], alpha [B,T,R]."""
        memory = self.encode(features)
        inp = ids[:, :-1]
        T = inp.size(1)
        positions = torch.clamp(torch.arange(T, device=ids.device), max=self.cfg.max_len - 1)
        x = self.embed(inp, positions.unsqueeze(0).expand_as(inp))
        mask = torch.full((T, T), float("-inf"), device=ids.device).triu(1).to(x.dtype)
        probs = None
        for layer in self.layers:
            ck, cv = layer.cross_attn.keys_values(memory)
            x, _, _, probs = layer(x, None, None, ck, cv, mask)
        return self.fc(self.ln_out(x)), probs.float().mean(1)

    @torch.no_grad()
    def greedy(self, features: Tensor, start: int, end: int, max_len: int) -> Tensor:
        """Greedy decoding → ids [B, max_len] (after <start>; <end> then padding with <end>)."""
        seqs, _ = self.sample(features, start, end, max_len, greedy=True)
        return seqs

    def sample(self, features: Tensor, start: int, end: int, max_len: int, greedy: bool = False,
               temperature: float = 1.0, generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
        """Sample (multinomial) or greedy-decode with the key/value cache. Returns ids [B,max_len] (<end> repeated
        after the first <end>) and the log-probabilities of the chosen tokens [B,max_len] (0 after <end>),
        differentiable when grad is enabled."""
        past, cross = self._layers_of(self.init_state(features))
        cache = {"past": past}

        def step(tokens: Tensor) -> Tensor:
            logits, cache["past"], _ = self.step_logits(tokens, cache["past"], cross)
            return logits

        return sample_sequences(step, features.size(0), features.device, start, end, max_len, greedy, temperature,
                                generator)
