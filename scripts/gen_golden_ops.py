#!/usr/bin/env python3
"""Golden parity fixtures for the Chimera op set, computed by PyTorch.

Writes one safetensors file per case to test/golden/ops/<case>.safetensors holding
  in.<name>    the op's inputs (f32; indices as I32; bool masks as I32 0/1, listed in
               the metadata key "bool_inputs")
  out.<name>   the forward outputs ("out" for a single output, "out0".. for lists)
  gout.<name>  an upstream gradient for each float output
  grad.<name>  d(sum_o <out_o, gout_o>) / d(input) for each differentiable input
and __metadata__ {"format": "chimera-golden", "version": "1", "torch", "case", "op", "params"
(JSON), "bool_inputs" (JSON list)}. test/golden-ops.test.ts maps (op, params) to the Chimera
call, so the names used here are a contract with that test.

Inputs are drawn in f32 with a per-case seed (crc32 of the case name); the reference values
are computed in float64 from those exact f32 values and rounded to f32 once, so the fixtures
carry no f32 accumulation error of PyTorch's own.

Run: /usr/bin/python3 scripts/gen_golden_ops.py   (needs torch; Debian's torch 1.13 CPU works)
"""

import json
import math
import os
import sys
import zlib

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, 'test', 'golden', 'ops')

CASES = []  # (name, op, params, make_inputs, fn, nograd)


# ---- safetensors writer ------------------------------------------------------------------------

def write_safetensors(path, tensors, metadata):
    golden_io.write_safetensors(path, tensors, metadata)


# ---- case registry -----------------------------------------------------------------------------

def case(name, op, make, fn, params=None, nograd=()):
    """make() -> dict of inputs (drawn after seeding); fn(**inputs_f64) -> tensor, list or dict."""
    CASES.append((name, op, params or {}, make, fn, set(nograd)))


def seed_of(name):
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def rn(*shape, scale=1.0):
    return torch.randn(shape) * scale


def pos(*shape, lo=0.2, hi=2.5):
    return torch.rand(shape) * (hi - lo) + lo


def ints(n, *shape):
    return torch.randint(0, n, shape, dtype=torch.int64)


def as_outputs(r):
    if isinstance(r, torch.Tensor):
        return {'out': r}
    if isinstance(r, (list, tuple)):
        return {f'out{i}': t for i, t in enumerate(r)}
    return dict(r)


def run_case(name, op, params, make, fn, nograd):
    torch.manual_seed(seed_of(name))
    inputs = make()
    bool_inputs = sorted(k for k, v in inputs.items() if v.dtype == torch.bool)
    args = {}
    diff = []
    for k, v in inputs.items():
        if v.is_floating_point():
            a = v.to(torch.float64)
            if k not in nograd:
                a.requires_grad_(True)
                diff.append(k)
            args[k] = a
        else:
            args[k] = v
    outs = as_outputs(fn(**args))
    tensors = {}
    for k, v in inputs.items():
        tensors[f'in.{k}'] = v.to(torch.int32) if v.dtype == torch.bool else v
    float_outs = [k for k, v in outs.items() if v.is_floating_point()]
    gouts = {k: torch.randn(tuple(outs[k].shape)) for k in float_outs}
    for k, v in outs.items():
        tensors[f'out.{k}'] = v
        if not torch.isfinite(v.to(torch.float64)).all() and v.is_floating_point():
            raise ValueError(f'{name}: non-finite output {k}')
    for k, g in gouts.items():
        tensors[f'gout.{k}'] = g
    if diff and float_outs:
        grads = torch.autograd.grad([outs[k] for k in float_outs], [args[k] for k in diff],
                                    [gouts[k].to(torch.float64) for k in float_outs], allow_unused=True)
        for k, g in zip(diff, grads):
            g = torch.zeros_like(args[k]) if g is None else g
            if not torch.isfinite(g).all():
                raise ValueError(f'{name}: non-finite gradient for {k}')
            tensors[f'grad.{k}'] = g
    meta = {
        'format': 'chimera-golden', 'version': '1', 'torch': torch.__version__,
        'case': name, 'op': op, 'params': json.dumps(params, sort_keys=True),
        'bool_inputs': json.dumps(bool_inputs),
    }
    write_safetensors(os.path.join(OUT_DIR, f'{name}.safetensors'), tensors, meta)


# ---- linalg ------------------------------------------------------------------------------------

def mm_case(name, sa, sb, trans_a=False, trans_b=False):
    # Transposed operands are stored transposed; the test feeds transpose(stored) to matmul.
    def fn(a, b):
        return (a.transpose(-2, -1) if trans_a else a) @ (b.transpose(-2, -1) if trans_b else b)
    case(name, 'matmul', lambda: dict(a=rn(*sa), b=rn(*sb)), fn, {'transA': trans_a, 'transB': trans_b})


mm_case('matmul_2d', (3, 4), (4, 5))
mm_case('matmul_batched', (2, 3, 4, 5), (2, 3, 5, 6))
mm_case('matmul_bcast_batch', (2, 1, 3, 4), (3, 4, 5))
mm_case('matmul_bcast_2d_right', (2, 3, 4), (4, 5))
mm_case('matmul_bcast_2d_left', (4, 5), (2, 5, 3))
mm_case('matmul_1d_left', (4,), (2, 4, 5))
mm_case('matmul_1d_right', (2, 3, 4), (4,))
mm_case('matmul_1d_both', (6,), (6,))
mm_case('matmul_trans_b', (3, 4), (5, 4), trans_b=True)
mm_case('matmul_trans_a_batched', (2, 4, 3), (2, 4, 5), trans_a=True)
mm_case('matmul_trans_both_bcast', (2, 4, 3), (5, 4), trans_a=True, trans_b=True)

case('linear_bias', 'linear', lambda: dict(x=rn(2, 3, 4), w=rn(5, 4), bias=rn(5)), lambda x, w, bias: F.linear(x, w, bias))
case('linear_nobias', 'linear', lambda: dict(x=rn(3, 4), w=rn(5, 4)), lambda x, w: F.linear(x, w))
case('linear_1d_input', 'linear', lambda: dict(x=rn(4), w=rn(3, 4), bias=rn(3)), lambda x, w, bias: F.linear(x, w, bias))

# ---- elementwise binary ------------------------------------------------------------------------

BINARY = {
    'add': lambda a, b: a + b,
    'sub': lambda a, b: a - b,
    'mul': lambda a, b: a * b,
    'div': lambda a, b: a / b,
    'pow': lambda a, b: torch.pow(a, b),
    'maximum': lambda a, b: torch.maximum(a, b),
    'minimum': lambda a, b: torch.minimum(a, b),
}


def bin_inputs(op, sa, sb):
    def make():
        a = pos(*sa) if op == 'pow' else rn(*sa)
        b = rn(*sb) if op != 'div' else torch.sign(rn(*sb)) * pos(*sb, lo=0.5, hi=2.0)
        return dict(a=a, b=b)
    return make


for op, f in BINARY.items():
    case(f'{op}_bcast', 'binary', bin_inputs(op, (2, 3, 4), (3, 1)), f, {'fn': op})
    case(f'{op}_bcast_both', 'binary', bin_inputs(op, (2, 1, 4), (3, 1)), f, {'fn': op})
case('mul_scalar_tensor', 'binary', lambda: dict(a=rn(2, 3), b=rn()), BINARY['mul'], {'fn': 'mul'})
case('add_same_shape', 'binary', lambda: dict(a=rn(3, 5), b=rn(3, 5)), BINARY['add'], {'fn': 'add'})


def ties_make():
    a = torch.round(rn(3, 4) * 2) / 2
    b = torch.round(rn(4) * 2) / 2
    a[0, :] = b  # guaranteed ties along a whole row
    return dict(a=a, b=b)


case('maximum_ties', 'binary', ties_make, BINARY['maximum'], {'fn': 'maximum'})
case('minimum_ties', 'binary', ties_make, BINARY['minimum'], {'fn': 'minimum'})

# A JS number on one side: F.<fn>(number, x) or F.<fn>(x, number).
case('sub_number_left', 'binary_number', lambda: dict(x=rn(2, 3)), lambda x: 3.0 - x, {'fn': 'sub', 'value': 3.0, 'side': 'left'})
case('div_number_right', 'binary_number', lambda: dict(x=rn(2, 3)), lambda x: x / 4.0, {'fn': 'div', 'value': 4.0, 'side': 'right'})
case('div_number_left', 'binary_number', lambda: dict(x=pos(2, 3)), lambda x: 2.0 / x, {'fn': 'div', 'value': 2.0, 'side': 'left'})
case('mul_number_right', 'binary_number', lambda: dict(x=rn(2, 3)), lambda x: x * -1.5, {'fn': 'mul', 'value': -1.5, 'side': 'right'})
case('pow_number_right', 'binary_number', lambda: dict(x=pos(2, 3)), lambda x: x ** 2.5, {'fn': 'pow', 'value': 2.5, 'side': 'right'})
case('maximum_number_right', 'binary_number', lambda: dict(x=rn(2, 5)), lambda x: torch.clamp(x, min=0.1), {'fn': 'maximum', 'value': 0.1, 'side': 'right'})

# ---- elementwise unary -------------------------------------------------------------------------

UNARY = {
    'neg': (lambda x: -x, 'any'),
    'abs': (lambda x: torch.abs(x), 'any'),
    'exp': (lambda x: torch.exp(x), 'any'),
    'log': (lambda x: torch.log(x), 'pos'),
    'sqrt': (lambda x: torch.sqrt(x), 'pos'),
    'rsqrt': (lambda x: torch.rsqrt(x), 'pos'),
    'square': (lambda x: torch.square(x), 'any'),
    'reciprocal': (lambda x: torch.reciprocal(x), 'pos'),
    'sin': (lambda x: torch.sin(x), 'any'),
    'cos': (lambda x: torch.cos(x), 'any'),
    'tanh': (lambda x: torch.tanh(x), 'any'),
    'sigmoid': (lambda x: torch.sigmoid(x), 'any'),
    'relu': (lambda x: torch.relu(x), 'any'),
    'gelu': (lambda x: F.gelu(x), 'any'),
    'geluTanh': (lambda x: F.gelu(x, approximate='tanh'), 'any'),
    'quickGelu': (lambda x: x * torch.sigmoid(1.702 * x), 'any'),
    'silu': (lambda x: F.silu(x), 'any'),
}
for fname, (f, dom) in UNARY.items():
    mk = (lambda: dict(x=pos(3, 7, lo=0.05, hi=4.0))) if dom == 'pos' else (lambda: dict(x=rn(3, 7, scale=2.0)))
    case(f'unary_{fname}', 'unary', mk, f, {'fn': fname})

case('scale', 'scale', lambda: dict(x=rn(2, 5)), lambda x: x * 0.37, {'value': 0.37})
case('add_scalar', 'addScalar', lambda: dict(x=rn(2, 5)), lambda x: x - 1.25, {'value': -1.25})
case('pow_scalar_int', 'powScalar', lambda: dict(x=rn(2, 5)), lambda x: x ** 3, {'value': 3})
case('pow_scalar_frac', 'powScalar', lambda: dict(x=pos(2, 5)), lambda x: x ** 1.5, {'value': 1.5})
case('pow_scalar_neg', 'powScalar', lambda: dict(x=pos(2, 5)), lambda x: x ** -2, {'value': -2})
case('clamp_both', 'clamp', lambda: dict(x=rn(3, 6)), lambda x: torch.clamp(x, -0.5, 0.8), {'lo': -0.5, 'hi': 0.8})
case('clamp_min_only', 'clamp', lambda: dict(x=rn(3, 6)), lambda x: torch.clamp(x, min=0.0), {'lo': 0.0, 'hi': None})
case('clamp_max_only', 'clamp', lambda: dict(x=rn(3, 6)), lambda x: torch.clamp(x, max=0.3), {'lo': None, 'hi': 0.3})


def clamp_boundary_make():
    x = rn(2, 6)
    x[0, 0] = -0.5
    x[1, 3] = 0.75  # exactly at the bounds: PyTorch passes the gradient through (lo <= x <= hi)
    return dict(x=x)


case('clamp_boundary', 'clamp', clamp_boundary_make, lambda x: torch.clamp(x, -0.5, 0.75), {'lo': -0.5, 'hi': 0.75})

# ---- selection -------------------------------------------------------------------------------------

case('where_bcast', 'where', lambda: dict(cond=torch.rand(2, 1, 4) > 0.5, a=rn(2, 3, 4), b=rn(3, 1)),
     lambda cond, a, b: torch.where(cond, a, b))
case('where_number_b', 'where', lambda: dict(cond=torch.rand(3, 4) > 0.4, a=rn(3, 4)),
     lambda cond, a: torch.where(cond, a, torch.tensor(-2.0, dtype=torch.float64)), {'b': -2.0})
case('masked_fill_bcast', 'maskedFill', lambda: dict(x=rn(2, 3, 4), mask=torch.rand(3, 4) > 0.6),
     lambda x, mask: x.masked_fill(mask, -1e4), {'value': -1e4})
case('masked_fill_same', 'maskedFill', lambda: dict(x=rn(3, 5), mask=torch.rand(3, 5) > 0.5),
     lambda x, mask: x.masked_fill(mask, 0.5), {'value': 0.5})

# ---- reductions --------------------------------------------------------------------------------

case('sum_all', 'sum', lambda: dict(x=rn(2, 3, 4)), lambda x: x.sum(), {'axes': None, 'keepdim': False})
case('sum_axis1', 'sum', lambda: dict(x=rn(2, 3, 4)), lambda x: x.sum(1), {'axes': 1, 'keepdim': False})
case('sum_axes_keepdim', 'sum', lambda: dict(x=rn(2, 3, 4)), lambda x: x.sum((0, 2), keepdim=True), {'axes': [0, 2], 'keepdim': True})
case('sum_neg_axis_keepdim', 'sum', lambda: dict(x=rn(2, 3, 4)), lambda x: x.sum(-1, keepdim=True), {'axes': -1, 'keepdim': True})
case('mean_all', 'mean', lambda: dict(x=rn(2, 3, 4)), lambda x: x.mean(), {'axes': None, 'keepdim': False})
case('mean_axes_keepdim', 'mean', lambda: dict(x=rn(2, 3, 4, 5)), lambda x: x.mean((1, 3), keepdim=True), {'axes': [1, 3], 'keepdim': True})
case('mean_neg_axis', 'mean', lambda: dict(x=rn(2, 3, 4)), lambda x: x.mean(-2), {'axes': -2, 'keepdim': False})
case('max_axis1', 'max', lambda: dict(x=rn(2, 5, 3)), lambda x: x.max(1).values, {'axis': 1, 'keepdim': False})
case('max_last_keepdim', 'max', lambda: dict(x=rn(3, 6)), lambda x: x.max(-1, keepdim=True).values, {'axis': -1, 'keepdim': True})
case('min_axis0', 'min', lambda: dict(x=rn(4, 3)), lambda x: x.min(0).values, {'axis': 0, 'keepdim': False})


def max_ties_make():
    return dict(x=torch.tensor([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 1.0, 5.0], [0.0, -1.0, 0.0, -2.0]]))


# PyTorch returns (and routes the gradient to) the first extreme element on ties.
case('max_ties', 'max', max_ties_make, lambda x: x.max(1).values, {'axis': 1, 'keepdim': False})
case('min_ties', 'min', max_ties_make, lambda x: x.min(1).values, {'axis': 1, 'keepdim': False})
case('argmax_last', 'argmax', lambda: dict(x=rn(3, 7)), lambda x: x.argmax(-1), {'axis': -1, 'keepdim': False})
case('argmax_axis1_keepdim', 'argmax', lambda: dict(x=rn(2, 5, 3)), lambda x: x.argmax(1, keepdim=True), {'axis': 1, 'keepdim': True})
case('argmax_ties', 'argmax', max_ties_make, lambda x: x.argmax(1), {'axis': 1, 'keepdim': False})
case('argmin_axis0', 'argmin', lambda: dict(x=rn(4, 3)), lambda x: x.argmin(0), {'axis': 0, 'keepdim': False})
case('argmin_ties', 'argmin', max_ties_make, lambda x: x.argmin(1), {'axis': 1, 'keepdim': False})

# ---- softmax -----------------------------------------------------------------------------------

case('softmax_last', 'softmax', lambda: dict(x=rn(2, 3, 5)), lambda x: torch.softmax(x, -1), {'axis': -1})
case('softmax_mid', 'softmax', lambda: dict(x=rn(2, 4, 3)), lambda x: torch.softmax(x, 1), {'axis': 1})
case('softmax_large', 'softmax', lambda: dict(x=rn(3, 6, scale=40.0)), lambda x: torch.softmax(x, -1), {'axis': -1})
case('log_softmax_last', 'logSoftmax', lambda: dict(x=rn(2, 3, 5)), lambda x: torch.log_softmax(x, -1), {'axis': -1})
case('log_softmax_mid', 'logSoftmax', lambda: dict(x=rn(2, 4, 3)), lambda x: torch.log_softmax(x, 1), {'axis': 1})
case('log_softmax_first', 'logSoftmax', lambda: dict(x=rn(4, 2, 3)), lambda x: torch.log_softmax(x, 0), {'axis': 0})

# ---- norms -------------------------------------------------------------------------------------

case('layer_norm_affine', 'layerNorm', lambda: dict(x=rn(2, 3, 8, scale=2.0) + 0.5, weight=rn(8), bias=rn(8)),
     lambda x, weight, bias: F.layer_norm(x, (8,), weight, bias, 1e-5), {'eps': 1e-5})
case('layer_norm_plain', 'layerNorm', lambda: dict(x=rn(4, 6) + 1.0),
     lambda x: F.layer_norm(x, (6,), None, None, 1e-5), {'eps': 1e-5})
case('layer_norm_weight_only', 'layerNorm', lambda: dict(x=rn(3, 5), weight=rn(5)),
     lambda x, weight: F.layer_norm(x, (5,), weight, None, 1e-6), {'eps': 1e-6})


def hf_rms_norm(x, weight, eps):
    # transformers LlamaRMSNorm: hidden * rsqrt(mean(hidden^2, -1) + eps), then weight *.
    var = x.pow(2).mean(-1, keepdim=True)
    y = x * torch.rsqrt(var + eps)
    return y if weight is None else weight * y


case('rms_norm_weight', 'rmsNorm', lambda: dict(x=rn(2, 3, 8), weight=rn(8)),
     lambda x, weight: hf_rms_norm(x, weight, 1e-6), {'eps': 1e-6})
case('rms_norm_plain', 'rmsNorm', lambda: dict(x=rn(5, 6, scale=0.1)),
     lambda x: hf_rms_norm(x, None, 1e-5), {'eps': 1e-5})

# ---- rotary embedding --------------------------------------------------------------------------


def rope_tables(positions, rot, theta):
    # inv_freq_i = theta^(-2i/rot); angles [T, rot/2]; rounded to f32 as Chimera will hold them.
    inv = 1.0 / (theta ** (torch.arange(0, rot, 2, dtype=torch.float64) / rot))
    ang = torch.tensor(positions, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).to(torch.float32), torch.sin(ang).to(torch.float32)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), -1)


def rope_ref(x, cos, sin, interleaved):
    rot = cos.shape[-1] * 2
    xr, xp = x[..., :rot], x[..., rot:]
    if interleaved:
        c, s = cos.repeat_interleave(2, -1), sin.repeat_interleave(2, -1)
        pairs = xr.reshape(*xr.shape[:-1], rot // 2, 2)
        rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), -1).reshape(xr.shape)
    else:
        c, s = torch.cat((cos, cos), -1), torch.cat((sin, sin), -1)  # HF: emb = cat(freqs, freqs)
        rotated = rotate_half(xr)
    return torch.cat((xr * c + rotated * s, xp), -1)


def rope_case(name, xshape, positions, rot, theta, interleaved):
    def make():
        cos, sin = rope_tables(positions, rot, theta)
        return dict(x=rn(*xshape), cos=cos, sin=sin)
    case(name, 'rope', make, lambda x, cos, sin: rope_ref(x, cos, sin, interleaved),
         {'interleaved': interleaved, 'theta': theta, 'positions': positions}, nograd=('cos', 'sin'))


rope_case('rope_half', (2, 3, 5, 8), list(range(5)), 8, 10000.0, False)
rope_case('rope_half_offset', (1, 2, 4, 16), [7, 8, 9, 10], 16, 500000.0, False)
rope_case('rope_partial', (2, 2, 5, 10), [3, 4, 5, 6, 7], 4, 10000.0, False)
rope_case('rope_interleaved', (2, 3, 5, 8), list(range(5)), 8, 10000.0, True)
rope_case('rope_interleaved_partial', (1, 2, 4, 12), [0, 2, 4, 6], 8, 10000.0, True)
rope_case('rope_2d', (6, 4), list(range(6)), 4, 100.0, False)

# ---- attention ---------------------------------------------------------------------------------


def sdpa_ref(q, k, v, mask=None, causal=False, scale=None):
    # softmax(q k^T * scale + mask) v, written out; kv heads repeated for grouped-query attention.
    H, Hkv, Tq, Tk = q.shape[1], k.shape[1], q.shape[2], k.shape[2]
    if Hkv != H:
        k = k.repeat_interleave(H // Hkv, dim=1)
        v = v.repeat_interleave(H // Hkv, dim=1)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = (q @ k.transpose(-2, -1)) * scale
    allowed = torch.ones(Tq, Tk, dtype=torch.bool)
    if causal:  # bottom-right aligned: query i sees keys j <= i + (Tk - Tq)
        allowed = torch.ones(Tq, Tk, dtype=torch.bool).tril(Tk - Tq)
    if mask is not None:
        allowed = allowed & mask
    allowed = allowed.expand(s.shape)
    s = s.masked_fill(~allowed, float('-inf'))
    p = torch.softmax(s, -1)
    # A row with no visible key outputs 0 (Chimera's contract); masked_fill's backward zeroes
    # the NaN gradients such a row produces.
    p = torch.where(allowed.any(-1, keepdim=True), p, torch.zeros((), dtype=p.dtype))
    return p @ v


def attn_case(name, B, H, Hkv, Tq, Tk, D, Dv=None, causal=False, mask_shape=None, scale=None, mask_fn=None):
    Dv = D if Dv is None else Dv

    def make():
        d = dict(q=rn(B, H, Tq, D), k=rn(B, Hkv, Tk, D), v=rn(B, Hkv, Tk, Dv))
        if mask_shape is not None:
            m = torch.rand(*mask_shape) > 0.35
            d['mask'] = mask_fn(m) if mask_fn else m
        return d

    def fn(q, k, v, mask=None):
        return sdpa_ref(q, k, v, mask, causal, scale)
    case(name, 'attention', make, fn, {'causal': causal, 'scale': scale})


def key_padding(m):
    m[..., 0] = True  # every row keeps at least one key
    return m


def right_padding(m):
    # [B, 1, 1, Tk]: batch 0 unpadded, batch 1 with its last 2 keys padded.
    m[:] = True
    m[1, ..., -2:] = False
    return m


attn_case('attn_basic', 1, 2, 2, 4, 4, 8)
attn_case('attn_cross_len', 2, 2, 2, 3, 6, 4)
attn_case('attn_causal', 2, 2, 2, 5, 5, 8, causal=True)
attn_case('attn_causal_kv_cache', 1, 2, 2, 3, 7, 8, causal=True)
attn_case('attn_causal_single_query', 1, 3, 3, 1, 6, 4, causal=True)
attn_case('attn_padding_mask', 2, 2, 2, 4, 5, 8, mask_shape=(2, 1, 1, 5), mask_fn=right_padding)
attn_case('attn_causal_padding', 2, 2, 2, 4, 6, 4, causal=True, mask_shape=(2, 1, 1, 6), mask_fn=right_padding)
attn_case('attn_mask_full', 2, 2, 2, 3, 5, 4, mask_shape=(2, 2, 3, 5), mask_fn=key_padding)
attn_case('attn_mask_2d', 1, 2, 2, 4, 5, 4, mask_shape=(4, 5), mask_fn=key_padding)
attn_case('attn_gqa_causal', 2, 4, 2, 5, 5, 8, causal=True)
attn_case('attn_mqa_mask', 1, 4, 1, 3, 6, 4, mask_shape=(1, 1, 3, 6), mask_fn=key_padding)
attn_case('attn_scale_dv', 1, 2, 1, 4, 5, 8, Dv=6, scale=0.3)


def fully_masked_row(m):
    m[:] = True
    m[0, 0, 1, :] = False  # query row 1 of batch 0 sees nothing -> output 0
    return m


attn_case('attn_fully_masked_row', 2, 2, 2, 3, 4, 4, mask_shape=(2, 1, 3, 4), mask_fn=fully_masked_row)

# ---- losses ------------------------------------------------------------------------------------


def ce_case(name, lshape, reduction='mean', ignore_index=-100, smoothing=0.0, n_ignored=0):
    V = lshape[-1]

    def make():
        logits = rn(*lshape, scale=2.0)
        t = ints(V, *lshape[:-1])
        flat = t.view(-1)
        for i in range(n_ignored):
            flat[(2 * i + 1) % flat.numel()] = ignore_index
        return dict(logits=logits, targets=t)

    def fn(logits, targets):
        return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=ignore_index,
                               reduction=reduction, label_smoothing=smoothing).reshape(
            targets.shape if reduction == 'none' else ())
    case(name, 'crossEntropy', make, fn, {'reduction': reduction, 'ignoreIndex': ignore_index, 'labelSmoothing': smoothing})


ce_case('ce_mean', (6, 7))
ce_case('ce_sum', (6, 7), reduction='sum')
ce_case('ce_none', (6, 7), reduction='none')
ce_case('ce_ignore_mean', (8, 5), n_ignored=3)
ce_case('ce_ignore_none', (8, 5), reduction='none', n_ignored=2)
ce_case('ce_ignore_custom_index', (6, 5), ignore_index=2, n_ignored=2)
ce_case('ce_smoothing_mean', (6, 7), smoothing=0.1)
ce_case('ce_smoothing_ignore_mean', (8, 6), smoothing=0.2, n_ignored=3)
ce_case('ce_smoothing_sum', (6, 7), reduction='sum', smoothing=0.1, n_ignored=1)
ce_case('ce_smoothing_none', (6, 7), reduction='none', smoothing=0.15, n_ignored=1)
ce_case('ce_3d_logits', (2, 3, 9), n_ignored=1)

# ---- embedding, cumsum, topk -------------------------------------------------------------------


def emb_make():
    ids = ints(10, 2, 5)
    ids[0, 0] = ids[1, 4] = 3  # a repeated id accumulates gradient
    return dict(weight=rn(10, 4), ids=ids)


case('embedding', 'embedding', emb_make, lambda weight, ids: F.embedding(ids, weight))
case('embedding_1d', 'embedding', lambda: dict(weight=rn(6, 3), ids=torch.tensor([5, 0, 5, 2])), lambda weight, ids: F.embedding(ids, weight))

case('cumsum_axis1', 'cumsum', lambda: dict(x=rn(2, 5, 3)), lambda x: torch.cumsum(x, 1), {'axis': 1, 'reverse': False})
case('cumsum_last', 'cumsum', lambda: dict(x=rn(3, 6)), lambda x: torch.cumsum(x, -1), {'axis': -1, 'reverse': False})
case('cumsum_reverse', 'cumsum', lambda: dict(x=rn(2, 5, 3)), lambda x: torch.cumsum(x.flip(1), 1).flip(1), {'axis': 1, 'reverse': True})


def topk_fn(k):
    def fn(x):
        r = torch.topk(x, k, -1, largest=True, sorted=True)
        return {'values': r.values, 'indices': r.indices}
    return fn


case('topk_k3', 'topk', lambda: dict(x=rn(3, 8)), topk_fn(3), {'k': 3})
case('topk_full_sort', 'topk', lambda: dict(x=rn(2, 3, 6)), topk_fn(6), {'k': 6})
case('topk_k1', 'topk', lambda: dict(x=rn(4, 5)), topk_fn(1), {'k': 1})

# ---- convolution, pooling, resampling ----------------------------------------------------------


def conv_case(name, xs, ws, bias, stride=1, padding=0, dilation=1, groups=1):
    def make():
        d = dict(x=rn(*xs), w=rn(*ws, scale=0.5))
        if bias:
            d['bias'] = rn(ws[0])
        return d

    def fn(x, w, bias=None):
        return F.conv2d(x, w, bias, stride, padding, dilation, groups)
    case(name, 'conv2d', make, fn, {'stride': stride, 'padding': padding, 'dilation': dilation, 'groups': groups})


conv_case('conv2d_basic_bias', (2, 3, 7, 7), (4, 3, 3, 3), True)
conv_case('conv2d_stride_pad', (1, 3, 8, 8), (5, 3, 3, 3), False, stride=2, padding=1)
conv_case('conv2d_dilation', (1, 2, 9, 9), (3, 2, 3, 3), True, padding=2, dilation=2)
conv_case('conv2d_asym', (2, 2, 7, 6), (3, 2, 3, 2), True, stride=[2, 1], padding=[1, 0], dilation=[1, 2])
conv_case('conv2d_groups2', (2, 4, 6, 6), (6, 2, 3, 3), True, padding=1, groups=2)
conv_case('conv2d_depthwise', (2, 3, 6, 6), (3, 1, 3, 3), True, padding=1, groups=3)
conv_case('conv2d_depthwise_stride_dil', (1, 4, 9, 9), (4, 1, 3, 3), False, stride=2, padding=2, dilation=2, groups=4)
conv_case('conv2d_depthwise_mult', (1, 3, 6, 6), (6, 1, 3, 3), True, padding=1, groups=3)
conv_case('conv2d_patch_embed', (2, 3, 16, 16), (8, 3, 4, 4), True, stride=4)
conv_case('conv2d_1x1', (2, 5, 4, 4), (3, 5, 1, 1), False)


def pool_case(name, kind, xs, kernel, stride=None, padding=0, count_include_pad=True):
    def fn(x):
        if kind == 'max':
            return F.max_pool2d(x, kernel, stride, padding)
        return F.avg_pool2d(x, kernel, stride, padding, count_include_pad=count_include_pad)
    params = {'kernel': kernel, 'stride': stride, 'padding': padding}
    if kind == 'avg':
        params['countIncludePad'] = count_include_pad
    case(name, f'{kind}Pool2d', lambda: dict(x=rn(*xs)), fn, params)


pool_case('avg_pool_k2', 'avg', (2, 3, 6, 6), 2)
pool_case('avg_pool_pad_include', 'avg', (1, 2, 7, 7), 3, 2, 1, True)
pool_case('avg_pool_pad_exclude', 'avg', (1, 2, 7, 7), 3, 2, 1, False)
pool_case('avg_pool_asym', 'avg', (1, 2, 6, 7), [3, 2], [1, 2], [1, 0], False)
pool_case('max_pool_k2', 'max', (2, 3, 6, 6), 2)
pool_case('max_pool_pad', 'max', (1, 2, 7, 7), 3, 2, 1)
pool_case('max_pool_overlap', 'max', (1, 2, 5, 6), 3, 1)
pool_case('max_pool_asym', 'max', (1, 2, 7, 6), [2, 3], [2, 1], [1, 1])


def interp_case(name, xs, mode, size=None, scale_factor=None, align_corners=None):
    def fn(x):
        return F.interpolate(x, size=size, scale_factor=scale_factor, mode=mode, align_corners=align_corners)
    params = {'mode': mode, 'size': size, 'scaleFactor': scale_factor, 'alignCorners': align_corners}
    case(name, 'interpolate', lambda: dict(x=rn(*xs)), fn, params)


interp_case('interp_nearest_up', (1, 2, 4, 5), 'nearest', size=[8, 7])
interp_case('interp_nearest_down', (1, 2, 7, 9), 'nearest', size=[3, 4])
interp_case('interp_nearest_scale2', (2, 1, 3, 4), 'nearest', scale_factor=2.0)
interp_case('interp_nearest_scale_frac', (1, 2, 5, 6), 'nearest', scale_factor=1.7)
interp_case('interp_nearest_scale_half', (1, 2, 6, 7), 'nearest', scale_factor=0.5)
for ac in (False, True):
    tag = 'ac' if ac else 'noac'
    interp_case(f'interp_bilinear_up_{tag}', (1, 2, 4, 5), 'bilinear', size=[7, 9], align_corners=ac)
    interp_case(f'interp_bilinear_down_{tag}', (1, 2, 9, 8), 'bilinear', size=[4, 3], align_corners=ac)
    interp_case(f'interp_bicubic_up_{tag}', (1, 2, 4, 5), 'bicubic', size=[7, 9], align_corners=ac)
    interp_case(f'interp_bicubic_down_{tag}', (1, 2, 9, 8), 'bicubic', size=[4, 3], align_corners=ac)
    interp_case(f'interp_bilinear_scale_frac_{tag}', (1, 2, 5, 6), 'bilinear', scale_factor=1.7, align_corners=ac)
interp_case('interp_bicubic_scale2', (1, 2, 4, 5), 'bicubic', scale_factor=2.0, align_corners=False)
interp_case('interp_bicubic_scale_frac', (1, 1, 6, 7), 'bicubic', scale_factor=0.6, align_corners=False)
interp_case('interp_bilinear_scale_half', (1, 2, 8, 6), 'bilinear', scale_factor=0.5, align_corners=False)
interp_case('interp_bicubic_pos_embed', (1, 4, 4, 4), 'bicubic', size=[6, 6], align_corners=False)

# ---- layout ops ----------------------------------------------------------------------------------

case('concat_axis1', 'concat', lambda: dict(x0=rn(2, 1, 3), x1=rn(2, 3, 3), x2=rn(2, 2, 3)),
     lambda x0, x1, x2: torch.cat((x0, x1, x2), 1), {'axis': 1, 'n': 3})
case('concat_axis0', 'concat', lambda: dict(x0=rn(1, 4), x1=rn(3, 4)), lambda x0, x1: torch.cat((x0, x1), 0), {'axis': 0, 'n': 2})
case('concat_last', 'concat', lambda: dict(x0=rn(2, 3, 2), x1=rn(2, 3, 5)), lambda x0, x1: torch.cat((x0, x1), -1), {'axis': -1, 'n': 2})
case('split_sizes', 'split', lambda: dict(x=rn(2, 6, 3)), lambda x: torch.split(x, [1, 3, 2], 1), {'sizes': [1, 3, 2], 'axis': 1})
case('split_equal_last', 'split', lambda: dict(x=rn(3, 5)), lambda x: torch.split(x, 2, -1), {'sizes': 2, 'axis': -1})
case('chunk_axis0', 'chunk', lambda: dict(x=rn(7, 2)), lambda x: torch.chunk(x, 3, 0), {'chunks': 3, 'axis': 0})
case('stack_axis0', 'stack', lambda: dict(x0=rn(2, 3), x1=rn(2, 3), x2=rn(2, 3)),
     lambda x0, x1, x2: torch.stack((x0, x1, x2), 0), {'axis': 0, 'n': 3})
case('stack_axis1', 'stack', lambda: dict(x0=rn(2, 3), x1=rn(2, 3)), lambda x0, x1: torch.stack((x0, x1), 1), {'axis': 1, 'n': 2})
case('stack_last', 'stack', lambda: dict(x0=rn(2, 3), x1=rn(2, 3)), lambda x0, x1: torch.stack((x0, x1), -1), {'axis': -1, 'n': 2})
case('index_select_axis0', 'indexSelect', lambda: dict(x=rn(5, 3), idx=torch.tensor([4, 0, 4, 2])),
     lambda x, idx: torch.index_select(x, 0, idx), {'axis': 0})
case('index_select_axis1', 'indexSelect', lambda: dict(x=rn(2, 6, 3), idx=torch.tensor([1, 1, 5])),
     lambda x, idx: torch.index_select(x, 1, idx), {'axis': 1})
case('gather_axis1', 'gather', lambda: dict(x=rn(3, 5, 2), idx=ints(5, 3, 7, 2)),
     lambda x, idx: torch.gather(x, 1, idx), {'axis': 1})
case('gather_last', 'gather', lambda: dict(x=rn(4, 6), idx=ints(6, 4, 3)), lambda x, idx: torch.gather(x, -1, idx), {'axis': -1})
case('slice_step', 'slice', lambda: dict(x=rn(2, 8, 3)), lambda x: x[:, 1:7:2], {'axis': 1, 'start': 1, 'end': 7, 'step': 2})
case('slice_negative', 'slice', lambda: dict(x=rn(3, 6)), lambda x: x[:, -4:-1], {'axis': -1, 'start': -4, 'end': -1, 'step': 1})
case('slice_open_end_step3', 'slice', lambda: dict(x=rn(10, 2)), lambda x: x[2::3], {'axis': 0, 'start': 2, 'end': None, 'step': 3})
case('permute_4d', 'permute', lambda: dict(x=rn(2, 3, 4, 5)), lambda x: x.permute(2, 0, 3, 1), {'axes': [2, 0, 3, 1]})
case('transpose_last2', 'transpose', lambda: dict(x=rn(2, 3, 4)), lambda x: x.transpose(-2, -1), {'a': -2, 'b': -1})
case('expand_bcast', 'expand', lambda: dict(x=rn(3, 1)), lambda x: x.expand(2, 3, 4), {'shape': [2, 3, 4]})
case('expand_keep', 'expand', lambda: dict(x=rn(1, 4)), lambda x: x.expand(3, -1), {'shape': [3, -1]})
case('reshape_after_permute', 'reshapeAfterPermute', lambda: dict(x=rn(2, 3, 4)),
     lambda x: x.permute(1, 0, 2).reshape(3, 8), {'axes': [1, 0, 2], 'shape': [3, 8]})
case('unsqueeze_squeeze', 'unsqueezeSqueeze', lambda: dict(x=rn(3, 1, 4)),
     lambda x: x.squeeze(1).unsqueeze(0), {'squeeze': 1, 'unsqueeze': 0})
case('flatten_mid', 'flatten', lambda: dict(x=rn(2, 3, 4, 2)), lambda x: x.flatten(1, 2), {'start': 1, 'end': 2})

# Views feeding kernels: strided inputs must reach kernels with the right values.
case('softmax_of_transposed', 'softmaxOfTransposed', lambda: dict(x=rn(2, 5, 3)),
     lambda x: torch.softmax(x.transpose(1, 2), -1), {'a': 1, 'b': 2})
case('matmul_of_sliced', 'matmulOfSliced', lambda: dict(a=rn(3, 8), b=rn(4, 5)),
     lambda a, b: a[:, 1::2] @ b, {'axis': 1, 'start': 1, 'step': 2})
case('mlp_chain', 'mlpChain', lambda: dict(x=rn(2, 3, 4), w1=rn(6, 4), b1=rn(6), w2=rn(4, 6)),
     lambda x, w1, b1, w2: F.linear(F.gelu(F.linear(x, w1, b1)), w2))


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    only = set(sys.argv[1:])
    names = [c[0] for c in CASES]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SystemExit(f'duplicate case names: {sorted(dup)}')
    for stale in os.listdir(OUT_DIR):
        if stale.endswith('.safetensors') and stale[:-len('.safetensors')] not in names and not only:
            os.remove(os.path.join(OUT_DIR, stale))
    total = 0
    for c in CASES:
        if only and c[0] not in only:
            continue
        run_case(*c)
        total += os.path.getsize(os.path.join(OUT_DIR, f'{c[0]}.safetensors'))
    print(f'wrote {len(CASES) if not only else len(only)} fixtures, {total} bytes, to {os.path.relpath(OUT_DIR, ROOT)}')


if __name__ == '__main__':
    main()
