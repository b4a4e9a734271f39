#!/usr/bin/env python3
"""Golden fixtures for two whole multimodal assemblies: SPHINX-Tiny and LLaVA-1.5 (tiny configs).

The configs are the presets' own (`chimera init --preset sphinx-tiny:tiny --config-only`, so the
compiled CLI must exist: run `npm run build` first). The references are written from SPEC §1 and
§3 with the hand-written HF-semantics encoders of gen_golden_vision.py and the LLaMA of
gen_golden_llama.py, in float64 from f32 weights:

  SPHINX-Tiny: PIL pad-to-square with the CLIP mean (offsets (L-W)//2), PIL bicubic to S, CLIP
    normalisation; ConvNeXt on the S input (native map, mean token prepended); DINOv2 on a torch
    bicubic resize to the view size after re-normalising to ImageNet statistics; channel concat
    [ConvNeXt | DINOv2] -> Linear -> LayerNorm; [start_img ; tokens ; end_img] right after BOS.
  LLaVA-1.5: PIL expand2square with the mean colour, shortest-edge bicubic resize + centre crop,
    CLIP normalisation; CLIP hidden state -2 with CLS dropped after the layer is taken; Linear,
    GELU, Linear; the image tokens replace the <image> placeholder.

Each fixture directory test/golden/models/<name>/ holds config.json, model.safetensors,
inputs.safetensors (input_ids I32 [1, T], image F32 [H, W, 3] of 8-bit values / 255) and
outputs.safetensors (logits F32 [1, L, V]).

Run: /usr/bin/python3 scripts/gen_golden_vlm.py
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_golden_llama as gl  # noqa: E402
import gen_golden_vision as gv  # noqa: E402
import golden_io  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, 'test', 'golden', 'models')
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMNET_MEAN = (0.485, 0.456, 0.406)
IMNET_STD = (0.229, 0.224, 0.225)
FILL = tuple(int(m * 255) for m in CLIP_MEAN)


def preset_config(name):
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(['node', os.path.join(ROOT, 'dist', 'src', 'cli', 'main.js'), 'init', '--preset', name, '--out', d, '--config-only'],
                       check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(d, 'config.json')) as f:
            return json.load(f)


def with_defaults(cfg, **defaults):
    out = dict(defaults)
    out.update(cfg)
    return out


def pad_square(img):
    W, H = img.size
    L = max(W, H)
    canvas = Image.new('RGB', (L, L), FILL)
    canvas.paste(img, ((L - W) // 2, (L - H) // 2))
    return canvas


def to_tensor(img, mean, std):
    a = torch.from_numpy(np.asarray(img, dtype=np.float64) / 255.0).permute(2, 0, 1)
    m = torch.tensor(mean, dtype=torch.float64)[:, None, None]
    s = torch.tensor(std, dtype=torch.float64)[:, None, None]
    return ((a - m) / s)[None]


def prefixed(p, prefix, into):
    for k, v in p.tensors.items():
        into[prefix + k] = v


def llama_module(cfg, seed):
    m = gl.LlamaForCausalLM(cfg)
    gl.randomize(m, torch.Generator().manual_seed(seed))
    tensors = {'language_model.' + k: v.detach().float().clone() for k, v in m.state_dict().items() if not k.endswith('inv_freq')}
    return m.double(), tensors


def llama_logits(m, x):
    """LlamaForCausalLM on inputs_embeds x [1, L, D] (float64)."""
    t = x.shape[1]
    pos = torch.arange(t)[None]
    cos, sin = m.model.rotary_emb(x, pos)
    mask = torch.full((t, t), torch.finfo(x.dtype).min, dtype=x.dtype).triu(1)[None, None]
    for layer in m.model.layers:
        x = layer(x, cos, sin, mask)
    return m.lm_head(m.model.norm(x))


def embed(m, ids):
    return m.model.embed_tokens(torch.tensor(ids)[None])


def image_uint8(W, H, seed):
    g = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    base = np.stack([np.sin(x / 5.0 + c) * 0.5 + 0.5 for c in range(3)], -1) * 0.6 + np.stack([np.cos(y / 7.0 + c) for c in range(3)], -1) * 0.2 + 0.2
    noise = g.random((H, W, 3)) * 0.15
    return np.clip((base + noise) * 255, 0, 255).astype(np.uint8)


def write(name, config, tensors, ids, img, logits):
    d = os.path.join(OUT_DIR, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'config.json'), 'w') as f:
        json.dump(config, f, indent=2)
        f.write('\n')
    golden_io.write_safetensors(os.path.join(d, 'model.safetensors'), tensors, {'format': 'pt'}, sort=False)
    golden_io.write_safetensors(os.path.join(d, 'inputs.safetensors'), {
        'input_ids': torch.tensor([ids], dtype=torch.int32),
        'image': torch.from_numpy(img.astype(np.float32) / 255.0),
    })
    golden_io.write_safetensors(os.path.join(d, 'outputs.safetensors'), {'logits': logits.float()},
                                {'format': 'chimera-golden-model', 'torch': torch.__version__})
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f'{name}: {len(tensors)} tensors, logits {list(logits.shape)}, {size} bytes')


def gen_sphinx_tiny():
    cfg = preset_config('sphinx-tiny:tiny')
    v = cfg['vision_config']
    S, r, cs = v['image_size'], v['view_size'], v['convnext_size']
    assert v['grid'] == 1 and v['convnext_mode'] == 'native' and cs == S
    conv_cfg = with_defaults(v['convnext'], num_channels=3, hidden_act='gelu', layer_norm_eps=1e-12)
    dino_cfg = with_defaults(v['dinov2'], num_channels=3, hidden_act='gelu', layer_norm_eps=1e-6, mlp_ratio=4)
    text = cfg['text_config']
    D = text['hidden_size']
    tensors = {}
    conv_p = gv.convnext_params(conv_cfg, 11)
    dino_p = gv.dinov2_params(dino_cfg, 12)
    prefixed(conv_p, 'openclip_convnext_xxl.', tensors)
    prefixed(dino_p, 'dinov2_vitg14.', tensors)
    width = conv_cfg['hidden_sizes'][-1] + dino_cfg['hidden_size']
    extra = gv.Params(13)
    extra.linear('visual_proj.0', width, D)
    extra.layernorm('visual_proj.1', D)
    extra.uniform('start_img', (1, 1, D), 0.0, 1.0)
    extra.uniform('end_img', (1, 1, D), 0.0, 1.0)
    prefixed(extra, '', tensors)
    lm, lm_tensors = llama_module(text, 14)
    tensors.update(lm_tensors)

    img = image_uint8(75, 52, 15)  # wider than tall: padded rows above and below
    x = to_tensor(pad_square(Image.fromarray(img)).resize((S, S), Image.BICUBIC), CLIP_MEAN, CLIP_STD)  # [1, 3, S, S]
    fmap, _, _ = gv.convnext_forward(conv_p, conv_cfg, x)  # [1, C, m, m]
    G = r // dino_cfg['patch_size']
    assert fmap.shape[-1] == G
    V = fmap.flatten(2).transpose(1, 2)
    V = torch.cat([V.mean(1, keepdim=True), V], 1)  # [1, 1 + G², C]
    xv = F.interpolate(x, size=(r, r), mode='bicubic', align_corners=False)
    m = torch.tensor(CLIP_MEAN, dtype=torch.float64)[:, None, None]
    s = torch.tensor(CLIP_STD, dtype=torch.float64)[:, None, None]
    xd = (xv * s + m - torch.tensor(IMNET_MEAN, dtype=torch.float64)[:, None, None]) / torch.tensor(IMNET_STD, dtype=torch.float64)[:, None, None]
    Gd, _, _ = gv.dinov2_forward(dino_p, dino_cfg, xd, 'size')  # [1, 1 + G², Dg]
    E = torch.cat([V, Gd], -1)
    vis = gv.ln(extra, 'visual_proj.1', gv.lin(extra, 'visual_proj.0', E), 1e-5)  # [1, 1 + G², D]
    view = torch.cat([extra['start_img'], vis, extra['end_img']], 1)
    ids = [1, 37, 90, 121, 14, 250, 3, 77]
    h = torch.cat([embed(lm, ids[:1]), view, embed(lm, ids[1:])], 1)
    write('vlm_sphinx_tiny', cfg, tensors, ids, img, llama_logits(lm, h))


def gen_llava15():
    cfg = preset_config('llava-1.5:tiny')
    v = cfg['vision_config']
    ccfg = with_defaults(v['vision_tower'], num_channels=3)
    S = ccfg['image_size']
    text = cfg['text_config']
    tensors = {}
    clip_p = gv.clip_params(ccfg, 21)
    prefixed(clip_p, 'vision_tower.', tensors)
    proj = gv.Params(22)
    proj.linear('mm_projector.0', ccfg['hidden_size'], text['hidden_size'])
    proj.linear('mm_projector.2', text['hidden_size'], text['hidden_size'])
    prefixed(proj, '', tensors)
    lm, lm_tensors = llama_module(text, 23)
    tensors.update(lm_tensors)

    img = image_uint8(40, 61, 24)  # taller than wide: padded columns
    sq = pad_square(Image.fromarray(img))
    x = to_tensor(sq.resize((S, S), Image.BICUBIC), CLIP_MEAN, CLIP_STD)  # shortest edge S of a square = S x S, centre crop is the whole
    _, _, hidden = gv.clip_forward(clip_p, ccfg, x)
    feats = hidden[-2][:, 1:]  # layer -2, CLS dropped after
    tok = gv.lin(proj, 'mm_projector.2', F.gelu(gv.lin(proj, 'mm_projector.0', feats)))
    image_id = cfg['image_token_id']
    ids = [1, 60, 61, image_id, 13, 200, 201, 9]
    k = ids.index(image_id)
    h = torch.cat([embed(lm, ids[:k]), tok, embed(lm, ids[k + 1:])], 1)
    write('vlm_llava15', cfg, tensors, ids, img, llama_logits(lm, h))


if __name__ == '__main__':
    torch.set_grad_enabled(False)
    gen_sphinx_tiny()
    gen_llava15()
