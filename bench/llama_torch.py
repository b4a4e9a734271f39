#!/usr/bin/env python3
"""PyTorch side of bench/llama.sh: the same measurements as `chimera bench train-step` and
`chimera bench decode`, on a plain torch LLaMA that follows Hugging Face modeling_llama.py
(eager attention, rotate_half RoPE, repeat_kv GQA, SiLU MLP, RMSNorm in f32, KV cache by concat).

usage: llama_torch.py train-step --config FILE --batch B --seq T --steps N
       llama_torch.py decode --config FILE --tokens N
Prints one JSON line: {"bench","tokens_per_s", "step_ms" | "ms_per_token", CPU times, "torch","threads"}.
Run with /usr/bin/python3 (Debian torch 1.13); threads default to 2 (--threads).
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Cfg:
    def __init__(self, j):
        self.hidden = j["hidden_size"]
        self.inter = j["intermediate_size"]
        self.layers = j["num_hidden_layers"]
        self.heads = j["num_attention_heads"]
        self.kv_heads = j.get("num_key_value_heads") or self.heads
        self.vocab = j["vocab_size"]
        self.eps = j.get("rms_norm_eps", 1e-6)
        self.theta = j.get("rope_theta", 10000.0)
        self.max_pos = j.get("max_position_embeddings", 2048)
        self.init_std = j.get("initializer_range", 0.02)
        self.tie = j.get("tie_word_embeddings", False)
        self.head_dim = j.get("head_dim") or self.hidden // self.heads


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        dt = x.dtype
        x = x.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dt)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def repeat_kv(x, n):
    if n == 1:
        return x
    b, h, t, d = x.shape
    return x[:, :, None, :, :].expand(b, h, n, t, d).reshape(b, h * n, t, d)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        d = c.head_dim
        self.q_proj = nn.Linear(c.hidden, c.heads * d, bias=False)
        self.k_proj = nn.Linear(c.hidden, c.kv_heads * d, bias=False)
        self.v_proj = nn.Linear(c.hidden, c.kv_heads * d, bias=False)
        self.o_proj = nn.Linear(c.heads * d, c.hidden, bias=False)

    def forward(self, x, cos, sin, cache):
        c = self.c
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, c.heads, c.head_dim).transpose(1, 2)  # [B, H, T, Dh]
        k = self.k_proj(x).view(b, t, c.kv_heads, c.head_dim).transpose(1, 2)  # [B, Hkv, T, Dh]
        v = self.v_proj(x).view(b, t, c.kv_heads, c.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:
            if cache[0] is not None:
                k = torch.cat([cache[0], k], dim=2)
                v = torch.cat([cache[1], v], dim=2)
            cache[0], cache[1] = k, v
        k = repeat_kv(k, c.heads // c.kv_heads)
        v = repeat_kv(v, c.heads // c.kv_heads)
        s = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(c.head_dim)  # [B, H, T, S]
        S = k.shape[2]
        if t > 1:
            mask = torch.full((t, S), float("-inf")).triu(S - t + 1)
            s = s + mask
        p = F.softmax(s, dim=-1, dtype=torch.float32).to(q.dtype)
        o = torch.matmul(p, v).transpose(1, 2).reshape(b, t, -1)
        return self.o_proj(o)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden, c.inter, bias=False)
        self.up_proj = nn.Linear(c.hidden, c.inter, bias=False)
        self.down_proj = nn.Linear(c.inter, c.hidden, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden, c.eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden, c.eps)
        self.mlp = MLP(c)

    def forward(self, x, cos, sin, cache):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c.vocab, c.hidden)
        self.layers = nn.ModuleList([Layer(c) for _ in range(c.layers)])
        self.norm = RMSNorm(c.hidden, c.eps)
        self.lm_head = nn.Linear(c.hidden, c.vocab, bias=False)
        if c.tie:
            self.lm_head.weight = self.embed_tokens.weight
        inv = 1.0 / (c.theta ** (torch.arange(0, c.head_dim, 2, dtype=torch.float32) / c.head_dim))
        self.register_buffer("inv_freq", inv, persistent=False)
        for m in self.modules():  # HF _init_weights
            if isinstance(m, (nn.Linear, nn.Embedding)):
                m.weight.data.normal_(0.0, c.init_std)

    def rope(self, start, t):
        pos = torch.arange(start, start + t, dtype=torch.float32)
        f = torch.outer(pos, self.inv_freq)
        emb = torch.cat((f, f), dim=-1)  # [T, Dh]
        return emb.cos()[None, None], emb.sin()[None, None]

    def forward(self, ids, caches=None, start=0, last_only=False):
        x = self.embed_tokens(ids)  # [B, T, D]
        cos, sin = self.rope(start, ids.shape[1])
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, None if caches is None else caches[i])
        x = self.norm(x)
        if last_only:
            x = x[:, -1:, :]
        return self.lm_head(x)  # [B, T, V]


def train_step_bench(c, batch, seq, steps):
    torch.manual_seed(0)
    model = Llama(c)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(1)
    times, cpu = [], []
    for i in range(steps + 1):  # the first step is warm-up
        ids = torch.randint(0, c.vocab, (batch, seq), generator=g)
        targets = torch.cat([ids[:, 1:], torch.full((batch, 1), -100, dtype=ids.dtype)], dim=1)
        t0, c0 = time.perf_counter(), time.process_time()
        logits = model(ids)
        loss = F.cross_entropy(logits.view(-1, c.vocab), targets.view(-1), ignore_index=-100)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        if i > 0:
            times.append(dt)
            cpu.append(time.process_time() - c0)
    med = statistics.median(times)
    return {"bench": "train-step", "tokens_per_s": batch * seq / med, "step_ms": med * 1e3, "step_cpu_ms": statistics.median(cpu) * 1e3, "loss": float(loss)}


@torch.no_grad()
def greedy(model, n):
    caches = [[None, None] for _ in range(model.c.layers)]
    tok = torch.tensor([[1]])
    out = []
    for pos in range(n):
        logits = model(tok, caches, start=pos, last_only=True)  # [1, 1, V]
        tok = logits[:, -1].argmax(-1, keepdim=True)
        out.append(int(tok))
    return out


def decode_bench(c, tokens):
    torch.manual_seed(0)
    model = Llama(c).eval()
    greedy(model, min(8, tokens))  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    greedy(model, tokens)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"bench": "decode", "tokens_per_s": tokens / dt, "ms_per_token": dt * 1e3 / tokens, "cpu_ms_per_token": cpu * 1e3 / tokens}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["train-step", "decode"])
    ap.add_argument("--config", required=True)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with open(a.config) as f:
        c = Cfg(json.load(f))
    r = train_step_bench(c, a.batch, a.seq, a.steps) if a.what == "train-step" else decode_bench(c, a.tokens)
    r.update({"torch": torch.__version__, "threads": torch.get_num_threads()})
    print(json.dumps(r))


if __name__ == "__main__":
    main()
