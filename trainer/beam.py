"""Batched beam search over ShowAttendTell.step (all beams of all images in one step call, like the ONNX runtime side).

Scoring: a finished hypothesis (one that emitted <end>, or reached max_len) ranks by
    sum of token log-probs (including <end>) / length ** length_penalty
where length counts the emitted tokens including <end>; length_penalty 0 ranks by the raw sum.
At each step the 2*beam best continuations are taken; those ending in <end> are set aside as finished, the best `beam`
others stay alive. With length_penalty 0 an image stops as soon as no alive beam can beat its best finished hypothesis
(scores only fall, so this is exact); with a length penalty it decodes to max_len.
"""

from __future__ import annotations

from typing import List

import torch


@torch.no_grad()
def beam_search(model, features: torch.Tensor, start: int, end: int, max_len: int, beam: int,
                length_penalty: float = 0.0) -> List[List[int]]:
    B = features.size(0)
    dev = features.device
    feats = model.normalize(features)
    proj, h, c = model._init_normalized(feats)
    V = model.cfg.vocab_size
    # beams of image b are rows b*beam .. b*beam+beam-1
    feats = feats.repeat_interleave(beam, 0)
    proj = proj.repeat_interleave(beam, 0)
    h = h.repeat_interleave(beam, 0)
    c = c.repeat_interleave(beam, 0)
    scores = torch.full((B, beam), float("-inf"), device=dev)
    scores[:, 0] = 0.0  # only one live beam at the start, so the first step does not pick duplicates
    tokens = torch.full((B * beam,), start, dtype=torch.long, device=dev)
    seqs = torch.zeros((B, beam, 0), dtype=torch.long, device=dev)
    finished: List[List[tuple]] = [[] for _ in range(B)]
    active = [True] * B

    def norm(score: float, length: int) -> float:
        return score / (length ** length_penalty) if length_penalty else score

    for t in range(max_len):
        logits, h, c, _ = model.step_logits(tokens, h, c, feats, proj)
        logp = torch.log_softmax(logits.float(), dim=-1).view(B, beam, V)
        cand = (scores.unsqueeze(2) + logp).view(B, beam * V)
        last = t == max_len - 1
        k = min(2 * beam, beam * V)
        top_s, top_i = cand.topk(k, dim=1)
        top_beam = top_i // V
        top_tok = top_i % V
        ts, tb, tt = top_s.tolist(), top_beam.tolist(), top_tok.tolist()
        seqs_cpu = seqs.tolist()
        # built on the host, then moved in one copy each (no per-element device writes)
        ns = [[float("-inf")] * beam for _ in range(B)]
        nsrc = [[0] * beam for _ in range(B)]
        ntok = [[end] * beam for _ in range(B)]
        for b in range(B):
            if not active[b]:
                continue
            kept = 0
            for j in range(k):
                s = ts[b][j]
                if s == float("-inf"):
                    break
                if tt[b][j] == end or last:
                    seq = seqs_cpu[b][tb[b][j]] + ([] if tt[b][j] == end else [tt[b][j]])
                    finished[b].append((norm(s, t + 1), seq))
                    continue
                if kept < beam:
                    ns[b][kept], nsrc[b][kept], ntok[b][kept] = s, tb[b][j], tt[b][j]
                    kept += 1
            if kept == 0:
                active[b] = False
            elif finished[b] and not length_penalty and ns[b][0] <= max(f[0] for f in finished[b]):
                active[b] = False
            if not active[b]:
                ns[b] = [float("-inf")] * beam
        if not any(active) or last:
            break
        new_scores = torch.tensor(ns, device=dev)
        new_src = torch.tensor(nsrc, dtype=torch.long, device=dev)
        new_tok = torch.tensor(ntok, dtype=torch.long, device=dev)
        rows = (torch.arange(B, device=dev).unsqueeze(1) * beam + new_src).view(-1)
        h, c = h[rows], c[rows]
        seqs = torch.cat([seqs.view(B * beam, -1)[rows].view(B, beam, -1), new_tok.unsqueeze(2)], dim=2)
        scores = new_scores
        tokens = new_tok.view(-1)
    out = []
    for b in range(B):
        if finished[b]:
            out.append(max(finished[b], key=lambda f: f[0])[1])
        else:
            out.append([])
    return out
