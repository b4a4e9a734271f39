#!/usr/bin/env python3
"""Golden fixtures for the visual encoder families (CLIP vision, DINOv2, ConvNeXt, BLIP-2 Q-Former).

There is no `transformers` package here, so each reference below is a hand-written torch function
that follows the Hugging Face modeling_*.py semantics of the class named in its docstring. Weights
are drawn in f32 with a fixed seed; the references run in float64 from those exact f32 values and
round to f32 once, so the fixtures carry no f32 accumulation error of their own.

Each fixture directory test/golden/models/<name>/ holds
  config.json           an HF-style config (model_type + keys)
  model.safetensors     the parameters under their HF checkpoint keys (F32)
  inputs.safetensors    the forward inputs under HF argument names (F32; masks as I32 0/1)
  outputs.safetensors   the expected outputs under HF output names (F32); "hidden_states.<i>" for
                        the hidden-state tuple; "<variant>.<name>" for extra variants; the
                        __metadata__ "options" JSON says how the forward was called.

ConvNeXt is also checked against torchvision's own ConvNeXt (Debian python3-torchvision) with the
weights mapped from the HF names: the script fails unless both agree to 1e-10 in float64, and the
torchvision outputs are stored as "torchvision.<name>".

Run: /usr/bin/python3 scripts/gen_golden_vision.py   (Debian's torch 1.13 CPU + torchvision 0.14)
"""

import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, 'test', 'golden', 'models')


# ---- io ----------------------------------------------------------------------------------------

def write_safetensors(path, tensors, metadata=None):
    golden_io.write_safetensors(path, tensors, metadata, sort=False)


def write_fixture(name, config, params, inputs, outputs, options):
    d = os.path.join(OUT_DIR, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'config.json'), 'w') as f:
        json.dump(config, f, indent=2)
        f.write('\n')
    write_safetensors(os.path.join(d, 'model.safetensors'), params.tensors, {'format': 'pt'})
    write_safetensors(os.path.join(d, 'inputs.safetensors'), inputs)
    meta = {'format': 'chimera-golden-model', 'torch': torch.__version__, 'options': json.dumps(options)}
    write_safetensors(os.path.join(d, 'outputs.safetensors'), outputs, meta)
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f'{name}: {len(params.tensors)} params, {size} bytes')


class Params:
    """f32 parameters in creation order, keyed by HF checkpoint key; read back as float64."""

    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)
        self.tensors = {}

    def normal(self, key, shape, std, mean=0.0):
        self.tensors[key] = (torch.randn(*shape, generator=self.g) * std + mean).float()

    def uniform(self, key, shape, lo, hi):
        self.tensors[key] = (torch.rand(*shape, generator=self.g) * (hi - lo) + lo).float()

    def linear(self, key, fan_in, fan_out, bias=True):
        self.normal(key + '.weight', (fan_out, fan_in), fan_in ** -0.5)
        if bias:
            self.normal(key + '.bias', (fan_out,), 0.1)

    def layernorm(self, key, d):
        self.normal(key + '.weight', (d,), 0.1, 1.0)
        self.normal(key + '.bias', (d,), 0.1)

    def __getitem__(self, key):
        return self.tensors[key].double()

    def has(self, key):
        return key in self.tensors


def randn(g, *shape):
    return torch.randn(*shape, generator=g).float()


# ---- shared pieces -------------------------------------------------------------------------------

ACT = {
    'gelu': F.gelu,
    'quick_gelu': lambda x: x * torch.sigmoid(1.702 * x),
}


def lin(p, key, x):
    b = p[key + '.bias'] if p.has(key + '.bias') else None
    return F.linear(x, p[key + '.weight'], b)


def ln(p, key, x, eps):
    return F.layer_norm(x, (x.shape[-1],), p[key + '.weight'], p[key + '.bias'], eps)


def mha(q, k, v, heads, additive_mask=None):
    """Eager attention as HF: softmax(q k^T / sqrt(Dh) + mask) v, heads split from the last dim."""
    B, Tq, D = q.shape
    Tk = k.shape[1]
    Dh = D // heads
    q = q.view(B, Tq, heads, Dh).transpose(1, 2)
    k = k.view(B, Tk, heads, Dh).transpose(1, 2)
    v = v.view(B, Tk, heads, Dh).transpose(1, 2)
    s = q @ k.transpose(-1, -2) / math.sqrt(Dh)
    if additive_mask is not None:
        s = s + additive_mask
    o = torch.softmax(s, dim=-1) @ v
    return o.transpose(1, 2).reshape(B, Tq, D)


def interp_grid(table, h, w, mode):
    """table [1, N, D] (square grid) -> [1, h*w, D] as HF interpolate_pos_encoding variants."""
    N, D = table.shape[1], table.shape[2]
    g = int(math.sqrt(N))
    x = table.reshape(1, g, g, D).permute(0, 3, 1, 2)
    if mode == 'size':
        y = F.interpolate(x, size=(h, w), mode='bicubic', align_corners=False)
    elif mode == 'scale_factor':  # HF Dinov2 before the size= refactor / facebookresearch dinov2
        hh, ww = h + 0.1, w + 0.1
        y = F.interpolate(x, scale_factor=(float(hh / math.sqrt(N)), float(ww / math.sqrt(N))), mode='bicubic', align_corners=False)
        assert int(hh) == y.shape[-2] and int(ww) == y.shape[-1]
    elif mode == 'antialias':  # HF Dinov2WithRegisters
        y = F.interpolate(x, size=(h, w), mode='bicubic', align_corners=False, antialias=True)
    else:
        raise ValueError(mode)
    return y.permute(0, 2, 3, 1).reshape(1, h * w, D)


# ---- CLIP vision (HF CLIPVisionModel) ----------------------------------------------------------------

def clip_params(cfg, seed):
    D, I, C, ps, L = cfg['hidden_size'], cfg['intermediate_size'], cfg['num_channels'], cfg['patch_size'], cfg['num_hidden_layers']
    g = cfg['image_size'] // ps
    p = Params(seed)
    pre = 'vision_model.'
    p.normal(pre + 'embeddings.class_embedding', (D,), 0.5)
    p.normal(pre + 'embeddings.patch_embedding.weight', (D, C, ps, ps), (C * ps * ps) ** -0.5)
    p.normal(pre + 'embeddings.position_embedding.weight', (g * g + 1, D), 0.5)
    p.layernorm(pre + 'pre_layrnorm', D)
    for i in range(L):
        k = f'{pre}encoder.layers.{i}.'
        for n in ('k_proj', 'v_proj', 'q_proj', 'out_proj'):
            p.linear(k + 'self_attn.' + n, D, D)
        p.layernorm(k + 'layer_norm1', D)
        p.linear(k + 'mlp.fc1', D, I)
        p.linear(k + 'mlp.fc2', I, D)
        p.layernorm(k + 'layer_norm2', D)
    p.layernorm(pre + 'post_layernorm', D)
    return p


def clip_forward(p, cfg, x, interpolate_pos_encoding=False):
    """CLIPVisionTransformer.forward -> (last_hidden_state, pooler_output, hidden_states)."""
    pre = 'vision_model.'
    D, ps, eps, heads = cfg['hidden_size'], cfg['patch_size'], cfg['layer_norm_eps'], cfg['num_attention_heads']
    act = ACT[cfg['hidden_act']]
    B, _, H, W = x.shape
    if not interpolate_pos_encoding:
        assert H == cfg['image_size'] and W == cfg['image_size']
    patch = F.conv2d(x, p[pre + 'embeddings.patch_embedding.weight'], stride=ps).flatten(2).transpose(1, 2)
    cls = p[pre + 'embeddings.class_embedding'].expand(B, 1, -1)
    emb = torch.cat([cls, patch], dim=1)
    pos = p[pre + 'embeddings.position_embedding.weight'].unsqueeze(0)
    if interpolate_pos_encoding and not (emb.shape[1] == pos.shape[1] and H == W):
        pos = torch.cat([pos[:, :1], interp_grid(pos[:, 1:], H // ps, W // ps, 'size')], dim=1)
    h = ln(p, pre + 'pre_layrnorm', emb + pos, eps)
    hidden = [h]
    for i in range(cfg['num_hidden_layers']):
        k = f'{pre}encoder.layers.{i}.'
        r = h
        a = ln(p, k + 'layer_norm1', h, eps)
        a = mha(lin(p, k + 'self_attn.q_proj', a), lin(p, k + 'self_attn.k_proj', a), lin(p, k + 'self_attn.v_proj', a), heads)
        h = r + lin(p, k + 'self_attn.out_proj', a)
        r = h
        m = lin(p, k + 'mlp.fc2', act(lin(p, k + 'mlp.fc1', ln(p, k + 'layer_norm2', h, eps))))
        h = r + m
        hidden.append(h)
    pooled = ln(p, pre + 'post_layernorm', h[:, 0, :], eps)
    return h, pooled, hidden


def gen_clip():
    base = dict(model_type='clip_vision_model', hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                num_attention_heads=4, num_channels=3, image_size=32, patch_size=8, hidden_act='quick_gelu',
                layer_norm_eps=1e-5, projection_dim=16, initializer_range=0.02, initializer_factor=1.0)
    # 1) native size, quick_gelu, every hidden state (index -2 is LLaVA's feature layer).
    g = torch.Generator().manual_seed(101)
    p = clip_params(base, 1)
    x = randn(g, 2, 3, 32, 32)
    last, pooled, hidden = clip_forward(p, base, x.double())
    outs = {'last_hidden_state': last, 'pooler_output': pooled}
    for i, h in enumerate(hidden):
        outs[f'hidden_states.{i}'] = h
    outs['post_layernorm_all'] = ln(p, 'vision_model.post_layernorm', last, base['layer_norm_eps'])
    write_fixture('clip_vision', base, p, {'pixel_values': x}, outs, {'interpolate_pos_encoding': False, 'output_hidden_states': True})
    # 2) exact GELU, input 40x24 (grid 5x3 from 4x4): interpolate_pos_encoding=True.
    cfg = dict(base, hidden_act='gelu')
    g = torch.Generator().manual_seed(102)
    p = clip_params(cfg, 2)
    x = randn(g, 2, 3, 40, 24)
    last, pooled, _ = clip_forward(p, cfg, x.double(), interpolate_pos_encoding=True)
    write_fixture('clip_vision_interp', cfg, p, {'pixel_values': x}, {'last_hidden_state': last, 'pooler_output': pooled},
                  {'interpolate_pos_encoding': True})


# ---- DINOv2 (HF Dinov2Model / Dinov2WithRegistersModel) ------------------------------------------------

def dinov2_hidden(cfg):
    h = int(cfg['hidden_size'] * cfg['mlp_ratio'])
    return (int(h * 2 / 3) + 7) // 8 * 8 if cfg.get('use_swiglu_ffn') else h


def dinov2_params(cfg, seed):
    D, C, ps, L = cfg['hidden_size'], cfg['num_channels'], cfg['patch_size'], cfg['num_hidden_layers']
    I = dinov2_hidden(cfg)
    g = cfg['image_size'] // ps
    p = Params(seed)
    p.normal('embeddings.cls_token', (1, 1, D), 0.5)
    p.normal('embeddings.mask_token', (1, D), 0.5)
    if cfg.get('num_register_tokens', 0) > 0:
        p.normal('embeddings.register_tokens', (1, cfg['num_register_tokens'], D), 0.5)
    p.normal('embeddings.position_embeddings', (1, g * g + 1, D), 0.5)
    p.normal('embeddings.patch_embeddings.projection.weight', (D, C, ps, ps), (C * ps * ps) ** -0.5)
    p.normal('embeddings.patch_embeddings.projection.bias', (D,), 0.1)
    for i in range(L):
        k = f'encoder.layer.{i}.'
        p.layernorm(k + 'norm1', D)
        for n in ('query', 'key', 'value'):
            p.linear(k + 'attention.attention.' + n, D, D)
        p.linear(k + 'attention.output.dense', D, D)
        p.uniform(k + 'layer_scale1.lambda1', (D,), 0.3, 1.0)
        p.layernorm(k + 'norm2', D)
        if cfg.get('use_swiglu_ffn'):
            p.linear(k + 'mlp.weights_in', D, 2 * I)
            p.linear(k + 'mlp.weights_out', I, D)
        else:
            p.linear(k + 'mlp.fc1', D, I)
            p.linear(k + 'mlp.fc2', I, D)
        p.uniform(k + 'layer_scale2.lambda1', (D,), 0.3, 1.0)
    p.layernorm('layernorm', D)
    return p


def dinov2_forward(p, cfg, x, mode, bool_masked_pos=None):
    """Dinov2Model.forward -> (last_hidden_state, pooler_output, hidden_states); `mode` picks the HF
    interpolate_pos_encoding version (see interp_grid)."""
    D, ps, eps, heads = cfg['hidden_size'], cfg['patch_size'], cfg['layer_norm_eps'], cfg['num_attention_heads']
    act = ACT[cfg['hidden_act']]
    B, _, H, W = x.shape
    emb = F.conv2d(x, p['embeddings.patch_embeddings.projection.weight'], p['embeddings.patch_embeddings.projection.bias'], stride=ps)
    emb = emb.flatten(2).transpose(1, 2)
    if bool_masked_pos is not None:
        emb = torch.where(bool_masked_pos.unsqueeze(-1), p['embeddings.mask_token'].unsqueeze(0), emb)
    emb = torch.cat([p['embeddings.cls_token'].expand(B, -1, -1), emb], dim=1)
    pos = p['embeddings.position_embeddings']
    if not (emb.shape[1] - 1 == pos.shape[1] - 1 and H == W):
        pos = torch.cat([pos[:, :1], interp_grid(pos[:, 1:], H // ps, W // ps, mode)], dim=1)
    h = emb + pos
    R = cfg.get('num_register_tokens', 0)
    if R > 0:
        h = torch.cat([h[:, :1], p['embeddings.register_tokens'].expand(B, -1, -1), h[:, 1:]], dim=1)
    hidden = [h]
    for i in range(cfg['num_hidden_layers']):
        k = f'encoder.layer.{i}.'
        a = ln(p, k + 'norm1', h, eps)
        a = mha(lin(p, k + 'attention.attention.query', a), lin(p, k + 'attention.attention.key', a),
                lin(p, k + 'attention.attention.value', a), heads)
        a = lin(p, k + 'attention.output.dense', a) * p[k + 'layer_scale1.lambda1']
        h = a + h
        m = ln(p, k + 'norm2', h, eps)
        if cfg.get('use_swiglu_ffn'):
            x1, x2 = lin(p, k + 'mlp.weights_in', m).chunk(2, dim=-1)
            m = lin(p, k + 'mlp.weights_out', F.silu(x1) * x2)
        else:
            m = lin(p, k + 'mlp.fc2', act(lin(p, k + 'mlp.fc1', m)))
        h = m * p[k + 'layer_scale2.lambda1'] + h
        hidden.append(h)
    seq = ln(p, 'layernorm', h, eps)
    return seq, seq[:, 0, :], hidden


def gen_dinov2():
    base = dict(model_type='dinov2', hidden_size=32, num_hidden_layers=3, num_attention_heads=4, mlp_ratio=4,
                hidden_act='gelu', layer_norm_eps=1e-6, image_size=28, patch_size=7, num_channels=3, qkv_bias=True,
                layerscale_value=1.0, use_swiglu_ffn=False, initializer_range=0.02, use_mask_token=True)
    # 1) native 28x28 (grid 4x4), hidden states, and a bool_masked_pos variant.
    g = torch.Generator().manual_seed(201)
    p = dinov2_params(base, 11)
    x = randn(g, 2, 3, 28, 28)
    mask = torch.rand(2, 16, generator=g) < 0.3
    seq, pooled, hidden = dinov2_forward(p, base, x.double(), 'scale_factor')
    outs = {'last_hidden_state': seq, 'pooler_output': pooled}
    for i, h in enumerate(hidden):
        outs[f'hidden_states.{i}'] = h
    mseq, mpooled, _ = dinov2_forward(p, base, x.double(), 'scale_factor', bool_masked_pos=mask)
    outs['masked.last_hidden_state'] = mseq
    outs['masked.pooler_output'] = mpooled
    write_fixture('dinov2', base, p, {'pixel_values': x, 'bool_masked_pos': mask.to(torch.int32)}, outs,
                  {'output_hidden_states': True, 'masked': 'bool_masked_pos'})
    # 2) table 5x5 (image 35), input 28x21 -> grid 4x3 (downsampling, non-square), all three versions.
    cfg = dict(base, image_size=35)
    g = torch.Generator().manual_seed(202)
    p = dinov2_params(cfg, 12)
    x = randn(g, 2, 3, 28, 21)
    outs = {}
    for mode in ('scale_factor', 'size', 'antialias'):
        seq, pooled, _ = dinov2_forward(p, cfg, x.double(), mode)
        pre = '' if mode == 'scale_factor' else mode + '.'
        outs[pre + 'last_hidden_state'] = seq
        outs[pre + 'pooler_output'] = pooled
    write_fixture('dinov2_interp', cfg, p, {'pixel_values': x}, outs,
                  {'pos_interp': 'scale_factor', 'variants': ['size', 'antialias'],
                   'hf_version': 'Dinov2Embeddings.interpolate_pos_encoding with scale_factor=((h0+0.1)/sqrt(N), (w0+0.1)/sqrt(N)) (transformers before the size= refactor)'})
    # 3) Dinov2WithRegisters: SwiGLU FFN, 2 registers, input 49x28 -> grid 7x4 from 4x4 (antialias=True).
    cfg = dict(base, model_type='dinov2_with_registers', use_swiglu_ffn=True, num_register_tokens=2, mlp_ratio=3)
    del cfg['use_mask_token']
    g = torch.Generator().manual_seed(203)
    p = dinov2_params(cfg, 13)
    x = randn(g, 2, 3, 49, 28)
    seq, pooled, _ = dinov2_forward(p, cfg, x.double(), 'antialias')
    write_fixture('dinov2_registers', cfg, p, {'pixel_values': x}, {'last_hidden_state': seq, 'pooler_output': pooled},
                  {'pos_interp': 'antialias'})


# ---- ConvNeXt (HF ConvNextModel) ------------------------------------------------------------------------

def convnext_params(cfg, seed):
    C0, ps, hs, depths = cfg['num_channels'], cfg['patch_size'], cfg['hidden_sizes'], cfg['depths']
    p = Params(seed)
    p.normal('embeddings.patch_embeddings.weight', (hs[0], C0, ps, ps), (C0 * ps * ps) ** -0.5)
    p.normal('embeddings.patch_embeddings.bias', (hs[0],), 0.1)
    p.layernorm('embeddings.layernorm', hs[0])
    prev = hs[0]
    for s, (C, d) in enumerate(zip(hs, depths)):
        k = f'encoder.stages.{s}.'
        if s > 0 or prev != C:
            p.layernorm(k + 'downsampling_layer.0', prev)
            p.normal(k + 'downsampling_layer.1.weight', (C, prev, 2, 2), (prev * 4) ** -0.5)
            p.normal(k + 'downsampling_layer.1.bias', (C,), 0.1)
        for l in range(d):
            b = f'{k}layers.{l}.'
            p.normal(b + 'dwconv.weight', (C, 1, 7, 7), 49 ** -0.5)
            p.normal(b + 'dwconv.bias', (C,), 0.1)
            p.layernorm(b + 'layernorm', C)
            p.linear(b + 'pwconv1', C, 4 * C)
            p.linear(b + 'pwconv2', 4 * C, C)
            p.uniform(b + 'layer_scale_parameter', (C,), 0.3, 1.0)
        prev = C
    p.layernorm('layernorm', hs[-1])
    return p


def ln_channels_first(p, key, x, eps=1e-6):
    """ConvNextLayerNorm(data_format='channels_first') as written in HF."""
    u = x.mean(1, keepdim=True)
    s = (x - u).pow(2).mean(1, keepdim=True)
    x = (x - u) / torch.sqrt(s + eps)
    return p[key + '.weight'][:, None, None] * x + p[key + '.bias'][:, None, None]


def convnext_forward(p, cfg, x):
    """ConvNextModel.forward -> (last_hidden_state, pooler_output, hidden_states)."""
    act = ACT[cfg['hidden_act']]
    h = F.conv2d(x, p['embeddings.patch_embeddings.weight'], p['embeddings.patch_embeddings.bias'], stride=cfg['patch_size'])
    h = ln_channels_first(p, 'embeddings.layernorm', h)
    hidden = [h]
    for s, d in enumerate(cfg['depths']):
        k = f'encoder.stages.{s}.'
        if p.has(k + 'downsampling_layer.0.weight'):
            h = ln_channels_first(p, k + 'downsampling_layer.0', h)
            h = F.conv2d(h, p[k + 'downsampling_layer.1.weight'], p[k + 'downsampling_layer.1.bias'], stride=2)
        for l in range(d):
            b = f'{k}layers.{l}.'
            C = h.shape[1]
            y = F.conv2d(h, p[b + 'dwconv.weight'], p[b + 'dwconv.bias'], padding=3, groups=C)
            y = y.permute(0, 2, 3, 1)
            y = F.layer_norm(y, (C,), p[b + 'layernorm.weight'], p[b + 'layernorm.bias'], 1e-6)
            y = lin(p, b + 'pwconv2', act(lin(p, b + 'pwconv1', y)))
            y = p[b + 'layer_scale_parameter'] * y
            h = h + y.permute(0, 3, 1, 2)
        hidden.append(h)
    pooled = F.layer_norm(h.mean([-2, -1]), (h.shape[1],), p['layernorm.weight'], p['layernorm.bias'], cfg['layer_norm_eps'])
    return h, pooled, hidden


def convnext_torchvision(p, cfg, x):
    """The same weights in torchvision.models.convnext.ConvNeXt (float64): (features, pooled LN)."""
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt
    hs, depths = cfg['hidden_sizes'], cfg['depths']
    assert cfg['patch_size'] == 4 and cfg['hidden_act'] == 'gelu' and cfg['layer_norm_eps'] == 1e-6
    setting = [CNBlockConfig(hs[i], hs[i + 1] if i + 1 < len(hs) else None, depths[i]) for i in range(len(hs))]
    m = ConvNeXt(setting, stochastic_depth_prob=0.0, layer_scale=1e-6, num_classes=3).double().eval()
    sd = {}
    sd['features.0.0.weight'] = p['embeddings.patch_embeddings.weight']
    sd['features.0.0.bias'] = p['embeddings.patch_embeddings.bias']
    sd['features.0.1.weight'] = p['embeddings.layernorm.weight']
    sd['features.0.1.bias'] = p['embeddings.layernorm.bias']
    for s, d in enumerate(depths):
        f = 1 + 2 * s
        for l in range(d):
            b = f'encoder.stages.{s}.layers.{l}.'
            t = f'features.{f}.{l}.'
            sd[t + 'block.0.weight'] = p[b + 'dwconv.weight']
            sd[t + 'block.0.bias'] = p[b + 'dwconv.bias']
            sd[t + 'block.2.weight'] = p[b + 'layernorm.weight']
            sd[t + 'block.2.bias'] = p[b + 'layernorm.bias']
            sd[t + 'block.3.weight'] = p[b + 'pwconv1.weight']
            sd[t + 'block.3.bias'] = p[b + 'pwconv1.bias']
            sd[t + 'block.5.weight'] = p[b + 'pwconv2.weight']
            sd[t + 'block.5.bias'] = p[b + 'pwconv2.bias']
            sd[t + 'layer_scale'] = p[b + 'layer_scale_parameter'].reshape(-1, 1, 1)
        if s + 1 < len(depths):
            k = f'encoder.stages.{s + 1}.downsampling_layer.'
            sd[f'features.{f + 1}.0.weight'] = p[k + '0.weight']
            sd[f'features.{f + 1}.0.bias'] = p[k + '0.bias']
            sd[f'features.{f + 1}.1.weight'] = p[k + '1.weight']
            sd[f'features.{f + 1}.1.bias'] = p[k + '1.bias']
    sd['classifier.0.weight'] = p['layernorm.weight']
    sd['classifier.0.bias'] = p['layernorm.bias']
    own = m.state_dict()
    sd['classifier.2.weight'] = own['classifier.2.weight']
    sd['classifier.2.bias'] = own['classifier.2.bias']
    missing = set(own) - set(sd)
    extra = set(sd) - set(own)
    assert not missing and not extra, (missing, extra)
    m.load_state_dict(sd)
    with torch.no_grad():
        feats = m.features(x)
        pooled = m.classifier[0](m.avgpool(feats)).flatten(1)
    return feats, pooled


def gen_convnext():
    cfg = dict(model_type='convnext', num_channels=3, patch_size=4, num_stages=3, hidden_sizes=[8, 16, 24],
               depths=[2, 1, 2], hidden_act='gelu', initializer_range=0.02, layer_norm_eps=1e-6,
               layer_scale_init_value=1e-6, drop_path_rate=0.0, image_size=32)
    g = torch.Generator().manual_seed(301)
    p = convnext_params(cfg, 21)
    x = randn(g, 2, 3, 32, 32)
    last, pooled, hidden = convnext_forward(p, cfg, x.double())
    tv_last, tv_pooled = convnext_torchvision(p, cfg, x.double())
    diff = max((last - tv_last).abs().max().item(), (pooled - tv_pooled).abs().max().item())
    assert diff < 1e-10, f'HF-semantics ConvNeXt differs from torchvision by {diff}'
    outs = {'last_hidden_state': last, 'pooler_output': pooled}
    for i, h in enumerate(hidden):
        outs[f'hidden_states.{i}'] = h
    outs['torchvision.last_hidden_state'] = tv_last
    outs['torchvision.pooler_output'] = tv_pooled
    write_fixture('convnext', cfg, p, {'pixel_values': x}, outs,
                  {'output_hidden_states': True, 'torchvision_max_abs_diff_f64': f'{diff:.1e}'})
    print(f'  convnext: HF-semantics reference vs torchvision max |diff| (float64) = {diff:.3e}')


# ---- BLIP-2 Q-Former (HF Blip2QFormerModel) ---------------------------------------------------------

def qformer_params(cfg, seed):
    D, I, E, L, f = cfg['hidden_size'], cfg['intermediate_size'], cfg['encoder_hidden_size'], cfg['num_hidden_layers'], cfg['cross_attention_frequency']
    p = Params(seed)
    p.layernorm('layernorm', D)
    for i in range(L):
        k = f'encoder.layer.{i}.'
        for n in ('query', 'key', 'value'):
            p.linear(k + 'attention.attention.' + n, D, D)
        p.linear(k + 'attention.output.dense', D, D)
        p.layernorm(k + 'attention.output.LayerNorm', D)
        if i % f == 0:
            p.linear(k + 'crossattention.attention.query', D, D)
            p.linear(k + 'crossattention.attention.key', E, D)
            p.linear(k + 'crossattention.attention.value', E, D)
            p.linear(k + 'crossattention.output.dense', D, D)
            p.layernorm(k + 'crossattention.output.LayerNorm', D)
        if cfg.get('use_qformer_text_input'):
            p.linear(k + 'intermediate.dense', D, I)
            p.linear(k + 'output.dense', I, D)
            p.layernorm(k + 'output.LayerNorm', D)
        p.linear(k + 'intermediate_query.dense', D, I)
        p.linear(k + 'output_query.dense', I, D)
        p.layernorm(k + 'output_query.LayerNorm', D)
    return p


def qformer_forward(p, cfg, query_embeds, enc, query_length=None, attention_mask=None, encoder_attention_mask=None):
    """Blip2QFormerModel.forward (transformers 4.27 semantics): -> (last_hidden_state, pooler_output)."""
    eps, heads = cfg['layer_norm_eps'], cfg['num_attention_heads']
    act = ACT[cfg['hidden_act']]
    B, T, _ = query_embeds.shape
    Q = T if query_length is None else query_length
    ext = None if attention_mask is None else (1.0 - attention_mask[:, None, None, :].double()) * -10000.0
    enc_ext = None if encoder_attention_mask is None else (1.0 - encoder_attention_mask[:, None, None, :].double()) * -10000.0

    def attention(key, x, kv, mask):
        c = mha(lin(p, key + 'attention.query', x), lin(p, key + 'attention.key', kv), lin(p, key + 'attention.value', kv), heads, mask)
        return ln(p, key + 'output.LayerNorm', lin(p, key + 'output.dense', c) + x, eps)

    def ffn(inter, out, x):
        return ln(p, out + '.LayerNorm', lin(p, out + '.dense', act(lin(p, inter + '.dense', x))) + x, eps)

    h = ln(p, 'layernorm', query_embeds, eps)
    for i in range(cfg['num_hidden_layers']):
        k = f'encoder.layer.{i}.'
        a = attention(k + 'attention.', h, h, ext)
        if Q > 0:
            q = a[:, :Q]
            if p.has(k + 'crossattention.attention.query.weight'):
                q = attention(k + 'crossattention.', q, enc, enc_ext)
            out = ffn(k + 'intermediate_query', k + 'output_query', q)
            if T > Q:
                out = torch.cat([out, ffn(k + 'intermediate', k + 'output', a[:, Q:])], dim=1)
        else:
            out = ffn(k + 'intermediate', k + 'output', a)
        h = out
    return h, h[:, 0, :]


def gen_qformer():
    base = dict(model_type='blip_2_qformer', vocab_size=30522, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                intermediate_size=64, hidden_act='gelu', hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                max_position_embeddings=512, initializer_range=0.02, layer_norm_eps=1e-12, pad_token_id=0,
                position_embedding_type='absolute', cross_attention_frequency=2, encoder_hidden_size=24)
    # 1) queries only (cross-attention in layers 0 and 2), plus learned query tokens expanded over the batch.
    g = torch.Generator().manual_seed(401)
    p = qformer_params(base, 31)
    q = randn(g, 2, 8, 32)
    enc = randn(g, 2, 10, 24)
    tokens = randn(g, 1, 8, 32)
    last, pooled = qformer_forward(p, base, q.double(), enc.double())
    tlast, tpooled = qformer_forward(p, base, tokens.double().expand(2, -1, -1), enc.double())
    write_fixture('blip2_qformer', base, p, {'query_embeds': q, 'encoder_hidden_states': enc, 'query_tokens': tokens},
                  {'last_hidden_state': last, 'pooler_output': pooled,
                   'query_tokens.last_hidden_state': tlast, 'query_tokens.pooler_output': tpooled},
                  {'variants': {'query_tokens': 'query_embeds = query_tokens.expand(B, -1, -1)'}})
    # 2) use_qformer_text_input: 8 queries + 5 text positions (text FFN), padding masks on both sides.
    cfg = dict(base, use_qformer_text_input=True)
    g = torch.Generator().manual_seed(402)
    p = qformer_params(cfg, 32)
    q = randn(g, 2, 13, 32)
    enc = randn(g, 2, 10, 24)
    am = torch.ones(2, 13, dtype=torch.int32)
    am[1, 11:] = 0
    em = torch.ones(2, 10, dtype=torch.int32)
    em[0, 7:] = 0
    last, pooled = qformer_forward(p, cfg, q.double(), enc.double(), query_length=8, attention_mask=am, encoder_attention_mask=em)
    write_fixture('blip2_qformer_text', cfg, p,
                  {'query_embeds': q, 'encoder_hidden_states': enc, 'attention_mask': am, 'encoder_attention_mask': em,
                   'query_length': torch.tensor([8], dtype=torch.int32)},
                  {'last_hidden_state': last, 'pooler_output': pooled}, {'query_length': 8})


if __name__ == '__main__':
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)  # reproducible float64 sums, so the fixtures are byte-identical across runs
    gen_clip()
    gen_dinov2()
    gen_convnext()
    gen_qformer()
