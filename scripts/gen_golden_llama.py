#!/usr/bin/env python3
"""Golden fixtures for the LLaMA family (src/models/llama.ts), computed by PyTorch.

A hand-written torch module that follows Hugging Face modeling_llama.py (LlamaForCausalLM):
RMSNorm computed in at least f32, rotary tables from HF's _compute_{default,linear_scaling,
dynamic_ntk,llama3}_parameters in f32, rotate_half RoPE, repeat_kv grouped-query attention
with a causal mask and an f32-or-wider softmax, SwiGLU MLP, final norm, optionally tied head.

For each tiny random config writes test/golden/models/<name>/:
  config.json          HF keys, model_type 'llama'
  model.safetensors    F32 weights under HF key names
  inputs.safetensors   input_ids I64 [2, 7]
  outputs.safetensors  logits F32 [2, 7, V]
and test/golden/models/llama_rope.json: inv_freq (f32 values) for rope settings of real
checkpoints (Llama 2, Llama 3.1's llama3 scaling, linear, dynamic NTK at two lengths).
The weights are f32; the reference runs in float64 from those exact values (rotary tables in
f32, as HF computes them) and rounds the logits to f32 once, so the fixtures carry no f32
accumulation error of their own.

Run: /usr/bin/python3 scripts/gen_golden_llama.py   (needs torch; Debian's torch 1.13 CPU works)
"""

import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402
import torch.nn.functional as F
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, 'test', 'golden', 'models')


# ---- safetensors writer ------------------------------------------------------------------------

def write_safetensors(path, tensors, metadata=None):
    golden_io.write_safetensors(path, tensors, metadata or {'format': 'pt'}, ints='I64')


# ---- the model (HF modeling_llama semantics) ---------------------------------------------------

def wide(dtype):
    """HF upcasts norms and softmax to f32; f64 inputs stay f64 (no downcast)."""
    return torch.promote_types(dtype, torch.float32)


class LlamaRMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        dt = x.dtype
        h = x.to(wide(dt))
        var = h.pow(2).mean(-1, keepdim=True)
        h = h * torch.rsqrt(var + self.eps)
        return self.weight * h.to(dt)


def default_inv_freq(base, dim):
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def rope_inv_freq(cfg, seq_len=None):
    """inv_freq (f32) and attention_factor as HF's ROPE_INIT_FUNCTIONS."""
    head_dim = cfg.get('head_dim') or cfg['hidden_size'] // cfg['num_attention_heads']
    dim = int(head_dim * cfg.get('partial_rotary_factor', 1.0))
    base = cfg.get('rope_theta', 10000.0)
    rs = cfg.get('rope_scaling')
    kind = 'default' if rs is None else rs.get('rope_type', rs.get('type'))
    if kind == 'default':
        return default_inv_freq(base, dim), 1.0
    if kind == 'linear':
        return default_inv_freq(base, dim) / rs['factor'], 1.0
    if kind == 'dynamic':
        mpe, factor = cfg['max_position_embeddings'], rs['factor']
        seq_len = seq_len if seq_len is not None and seq_len > mpe else mpe
        base = base * ((factor * seq_len / mpe) - (factor - 1)) ** (dim / (dim - 2))
        return default_inv_freq(base, dim), 1.0
    if kind == 'llama3':
        inv_freq = default_inv_freq(base, dim)
        factor, low, high = rs['factor'], rs['low_freq_factor'], rs['high_freq_factor']
        old = rs['original_max_position_embeddings']
        low_wavelen, high_wavelen = old / low, old / high
        wavelen = 2 * math.pi / inv_freq
        inv_l = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
        medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
        return torch.where(medium, smoothed, inv_l), 1.0
    raise ValueError(kind)


class LlamaRotaryEmbedding(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        inv_freq, self.scaling = rope_inv_freq(cfg)
        self.register_buffer('inv_freq', inv_freq, persistent=False)

    @torch.no_grad()
    def forward(self, x, position_ids):
        inv = self.inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
        pos = position_ids[:, None, :].float()
        freqs = (inv @ pos).transpose(1, 2)  # f32, as HF (autocast off)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos() * self.scaling, emb.sin() * self.scaling
        return cos.to(x.dtype), sin.to(x.dtype)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def repeat_kv(x, n_rep):
    b, hkv, t, d = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(b, hkv, n_rep, t, d).reshape(b, hkv * n_rep, t, d)


class LlamaAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, h = cfg['hidden_size'], cfg['num_attention_heads']
        self.h, self.hkv = h, cfg.get('num_key_value_heads') or h
        self.dh = cfg.get('head_dim') or d // h
        bias = cfg.get('attention_bias', False)
        self.q_proj = nn.Linear(d, self.h * self.dh, bias=bias)
        self.k_proj = nn.Linear(d, self.hkv * self.dh, bias=bias)
        self.v_proj = nn.Linear(d, self.hkv * self.dh, bias=bias)
        self.o_proj = nn.Linear(self.h * self.dh, d, bias=bias)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.h, self.dh).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.hkv, self.dh).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.hkv, self.dh).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        k, v = repeat_kv(k, self.h // self.hkv), repeat_kv(v, self.h // self.hkv)
        w = torch.matmul(q, k.transpose(2, 3)) * self.dh ** -0.5 + mask
        w = F.softmax(w, dim=-1, dtype=wide(q.dtype)).to(q.dtype)
        o = torch.matmul(w, v).transpose(1, 2).reshape(b, t, -1)
        return self.o_proj(o)


class LlamaMLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, i, bias = cfg['hidden_size'], cfg['intermediate_size'], cfg.get('mlp_bias', False)
        self.gate_proj = nn.Linear(d, i, bias=bias)
        self.up_proj = nn.Linear(d, i, bias=bias)
        self.down_proj = nn.Linear(i, d, bias=bias)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.self_attn = LlamaAttention(cfg)
        self.mlp = LlamaMLP(cfg)
        self.input_layernorm = LlamaRMSNorm(cfg['hidden_size'], cfg['rms_norm_eps'])
        self.post_attention_layernorm = LlamaRMSNorm(cfg['hidden_size'], cfg['rms_norm_eps'])

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg['vocab_size'], cfg['hidden_size'])
        self.layers = nn.ModuleList([LlamaDecoderLayer(cfg) for _ in range(cfg['num_hidden_layers'])])
        self.norm = LlamaRMSNorm(cfg['hidden_size'], cfg['rms_norm_eps'])
        self.rotary_emb = LlamaRotaryEmbedding(cfg)


class LlamaForCausalLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.model = LlamaModel(cfg)
        self.lm_head = nn.Linear(cfg['hidden_size'], cfg['vocab_size'], bias=False)
        if cfg.get('tie_word_embeddings', False):
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, input_ids, attention_mask=None):
        b, t = input_ids.shape
        x = self.model.embed_tokens(input_ids)
        if attention_mask is None:
            position_ids = torch.arange(t)[None].expand(b, t)
        else:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        cos, sin = self.model.rotary_emb(x, position_ids)
        neg = torch.finfo(x.dtype).min
        mask = torch.full((t, t), neg, dtype=x.dtype).triu(1)[None, None]
        if attention_mask is not None:
            mask = mask.masked_fill(attention_mask[:, None, None, :] == 0, neg)
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask)
        return self.lm_head(self.model.norm(x))


# ---- fixtures ----------------------------------------------------------------------------------

def base_config(**kw):
    cfg = {
        'architectures': ['LlamaForCausalLM'], 'model_type': 'llama', 'hidden_act': 'silu',
        'vocab_size': 64, 'hidden_size': 32, 'intermediate_size': 64, 'num_hidden_layers': 2,
        'num_attention_heads': 4, 'num_key_value_heads': 4, 'max_position_embeddings': 64,
        'rms_norm_eps': 1e-6, 'rope_theta': 10000.0, 'rope_scaling': None, 'attention_bias': False,
        'mlp_bias': False, 'tie_word_embeddings': False, 'initializer_range': 0.02,
        'bos_token_id': 1, 'eos_token_id': 2, 'torch_dtype': 'float32',
    }
    cfg.update(kw)
    return cfg


CONFIGS = {
    # GQA (4 heads over 2 kv heads), untied head, default rope.
    'llama_gqa': base_config(num_key_value_heads=2),
    # Tied head, q/k/v/o biases, explicit head_dim (H * Dh != D), MQA, llama3 rope scaling
    # whose thresholds put the 8 frequencies in all three bands.
    'llama_tied_llama3': base_config(
        num_key_value_heads=1, head_dim=16, tie_word_embeddings=True, attention_bias=True,
        rope_scaling={'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0,
                      'high_freq_factor': 4.0, 'original_max_position_embeddings': 64}),
    # Linear scaling under the legacy 'type' key, MLP biases, 6 heads over 3 kv heads, theta 5e5.
    'llama_linear': base_config(
        hidden_size=48, num_attention_heads=6, num_key_value_heads=3, intermediate_size=80,
        rope_theta=500000.0, rms_norm_eps=1e-5, mlp_bias=True,
        rope_scaling={'type': 'linear', 'factor': 4.0}),
}


def randomize(model, gen):
    """Weights larger than HF's init so attention and norms do visible work."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('embed_tokens.weight'):
                p.copy_(torch.randn(p.shape, generator=gen))
            elif 'norm' in name:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith('bias'):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))


ROPE_CASES = {
    'default_llama2': ({'hidden_size': 4096, 'num_attention_heads': 32, 'rope_theta': 10000.0}, None),
    'llama3_1': ({'hidden_size': 4096, 'num_attention_heads': 32, 'rope_theta': 500000.0,
                  'rope_scaling': {'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0,
                                   'high_freq_factor': 4.0, 'original_max_position_embeddings': 8192}}, None),
    'linear_x4': ({'hidden_size': 2048, 'num_attention_heads': 16, 'rope_theta': 10000.0,
                   'rope_scaling': {'type': 'linear', 'factor': 4.0}}, None),
    'dynamic_short': ({'hidden_size': 256, 'num_attention_heads': 4, 'rope_theta': 10000.0, 'max_position_embeddings': 512,
                       'rope_scaling': {'type': 'dynamic', 'factor': 2.0}}, 100),
    'dynamic_long': ({'hidden_size': 256, 'num_attention_heads': 4, 'rope_theta': 10000.0, 'max_position_embeddings': 512,
                      'rope_scaling': {'type': 'dynamic', 'factor': 2.0}}, 1500),
}


def rope_cases():
    out = {}
    for name, (cfg, seq_len) in ROPE_CASES.items():
        inv, _ = rope_inv_freq(cfg, seq_len)
        out[name] = {'config': cfg, 'seq_len': seq_len, 'inv_freq': [float(x) for x in inv.tolist()]}
    with open(os.path.join(OUT_DIR, 'llama_rope.json'), 'w') as f:
        json.dump(out, f, indent=1)
        f.write('\n')


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    rope_cases()
    for i, (name, cfg) in enumerate(CONFIGS.items()):
        gen = torch.Generator().manual_seed(1000 + i)
        model = LlamaForCausalLM(cfg)
        randomize(model, gen)
        input_ids = torch.randint(0, cfg['vocab_size'], (2, 7), generator=gen)
        # Weights as stored (f32), HF key names; tied heads are stored once, as HF's save does.
        weights = {k: v.float() for k, v in model.state_dict().items()}
        if cfg.get('tie_word_embeddings'):
            del weights['lm_head.weight']
        model64 = model.double()
        with torch.no_grad():
            logits = model64(input_ids).float()
            ref32 = LlamaForCausalLM(cfg)
            ref32.load_state_dict({k: v for k, v in model.state_dict().items()}, strict=False)
            drift = (ref32.float()(input_ids) - logits).abs().max().item()
        d = os.path.join(OUT_DIR, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, 'config.json'), 'w') as f:
            json.dump(cfg, f, indent=2)
            f.write('\n')
        write_safetensors(os.path.join(d, 'model.safetensors'), weights)
        write_safetensors(os.path.join(d, 'inputs.safetensors'), {'input_ids': input_ids})
        write_safetensors(os.path.join(d, 'outputs.safetensors'), {'logits': logits})
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        print(f'{name}: logits {list(logits.shape)}, |logits| max {logits.abs().max():.3f}, '
              f'f32 torch vs f64 max diff {drift:.2e}, {size} bytes')


if __name__ == '__main__':
    main()
