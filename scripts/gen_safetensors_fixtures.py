#!/usr/bin/python3
"""Reference safetensors files for test/safetensors.test.ts, written by hand with torch.

The framing (u64 LE header length, JSON header, data) is written here directly because
Debian 12 has no python3-safetensors; values and f32 conversions come from torch, so the
TypeScript reader is checked against an independent implementation.

  /usr/bin/python3 scripts/gen_safetensors_fixtures.py            # regenerate the fixtures
  /usr/bin/python3 scripts/gen_safetensors_fixtures.py verify F   # check a file, print a summary
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'safetensors')

ST = {  # safetensors name -> (torch dtype, bytes per element)
    torch.float64: ('F64', 8), torch.float32: ('F32', 4), torch.float16: ('F16', 2),
    torch.bfloat16: ('BF16', 2), torch.int64: ('I64', 8), torch.int32: ('I32', 4),
    torch.int16: ('I16', 2), torch.int8: ('I8', 1), torch.uint8: ('U8', 1), torch.bool: ('BOOL', 1),
}
TORCH = {v[0]: k for k, v in ST.items()}


def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype('<i2').tobytes()
    return t.numpy().tobytes()  # x86: already little-endian


def write_file(path, tensors, metadata=None, pad=True, order=None):
    """Reference-writer layout: data sorted by element size (desc) then name, header padded with spaces."""
    names = order or sorted(tensors, key=lambda n: (-ST[tensors[n].dtype][1], n))
    header, blobs, pos = {}, [], 0
    if metadata is not None:
        header['__metadata__'] = metadata
    for n in names:
        b = tensor_bytes(tensors[n])
        header[n] = {'dtype': ST[tensors[n].dtype][0], 'shape': list(tensors[n].shape), 'data_offsets': [pos, pos + len(b)]}
        blobs.append(b)
        pos += len(b)
    text = json.dumps(header, separators=(',', ':')).encode('utf-8')
    if pad:
        text += b' ' * ((8 - len(text) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def f32_bits(t):
    return [int(x) for x in t.to(torch.float32).reshape(-1).view(torch.int32).numpy().astype(np.uint32)]


def expected(tensors):
    out = {}
    for n, t in tensors.items():
        e = {'dtype': ST[t.dtype][0], 'shape': list(t.shape), 'hex': tensor_bytes(t).hex()}
        if t.dtype == torch.int64 and t.numel() and t.abs().max().item() > 2 ** 53:
            e['f32'] = None  # the reader must refuse
        else:
            e['f32'] = f32_bits(t)
        if t.dtype in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool):
            fits = t.numel() == 0 or (t.to(torch.int64).min().item() >= -2 ** 31 and t.to(torch.int64).max().item() < 2 ** 31)
            e['i32'] = [int(x) for x in t.to(torch.int64).reshape(-1).tolist()] if fits else None
        out[n] = e
    return out


def dump(path, obj):
    with open(path, 'w') as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write('\n')


def generate():
    os.makedirs(os.path.join(OUT, 'sharded'), exist_ok=True)
    inf, nan = math.inf, math.nan
    t = {
        'f64': torch.tensor([0.0, -0.0, 1.5, 1e300, -1e-40, nan, inf, -inf, math.pi], dtype=torch.float64),
        'f32': torch.tensor([[0.0, -0.0, 1.0], [1e-45, 3.4028235e38, -2.5]], dtype=torch.float32),
        'f16': torch.tensor([0.0, -0.0, 1.0, -2.0, 65504.0, 6.103515625e-05, 5.960464477539063e-08, inf, -inf, nan, 0.1, math.pi],
                            dtype=torch.float16).reshape(3, 4),
        'bf16': torch.tensor([0.0, -0.0, 1.0, -2.0, 3.3895313892515355e38, 1e-38, 9.183549615799121e-41, inf, -inf, nan, 0.1, math.pi],
                             dtype=torch.bfloat16).reshape(2, 2, 3),
        'i64': torch.tensor([0, -1, 2 ** 53, -2 ** 53, 123456789012, -5], dtype=torch.int64),
        'i64_huge': torch.tensor([2 ** 53 + 1, -(2 ** 63), 2 ** 63 - 1], dtype=torch.int64),
        'i32': torch.tensor([-2 ** 31, 2 ** 31 - 1, 0, 7], dtype=torch.int32),
        'i16': torch.tensor([-32768, 32767, 1], dtype=torch.int16),
        'i8': torch.tensor([-128, 127, 0], dtype=torch.int8),
        'u8': torch.tensor([0, 255, 17], dtype=torch.uint8),
        'bool': torch.tensor([True, False, True], dtype=torch.bool),
        'scalar': torch.tensor(42.5, dtype=torch.float32),
        'empty': torch.zeros(0, 3, dtype=torch.float32),
        '__proto__': torch.tensor([7.0, 8.0], dtype=torch.float32),
        'constructor': torch.tensor([1, 2], dtype=torch.int8),
    }
    write_file(os.path.join(OUT, 'reference_dtypes.safetensors'), t, metadata={'format': 'pt', '__proto__': 'x'})
    dump(os.path.join(OUT, 'reference_dtypes.expected.json'), expected(t))

    # No padding and a 3-byte tensor first: later tensors start at odd offsets.
    u = {
        'a': torch.tensor([1, 2, 3], dtype=torch.uint8),
        'b': torch.tensor([1.25, -7.5], dtype=torch.float32),
        'c': torch.tensor([0.5, -1.0, 2.0], dtype=torch.float16),
        'd': torch.tensor([1e-3], dtype=torch.float64),
        'e': torch.tensor([-3, 2 ** 40], dtype=torch.int64),
    }
    write_file(os.path.join(OUT, 'unaligned.safetensors'), u, pad=False, order=['a', 'b', 'c', 'd', 'e'])
    dump(os.path.join(OUT, 'unaligned.expected.json'), expected(u))

    # HF-style sharded checkpoint.
    torch.manual_seed(0)
    s = {
        'embed.weight': torch.randn(5, 2).to(torch.float16),
        'layers.0.weight': torch.randn(4, 3),
        'layers.0.bias': torch.randn(4),
        'layers.1.weight': torch.randn(2, 4).to(torch.bfloat16),
        'lm_head.weight': torch.randn(3, 2, dtype=torch.float64),
    }
    shards = {'model-00001-of-00002.safetensors': ['embed.weight', 'layers.0.bias', 'layers.0.weight'],
              'model-00002-of-00002.safetensors': ['layers.1.weight', 'lm_head.weight']}
    weight_map, total = {}, 0
    for fname, names in shards.items():
        write_file(os.path.join(OUT, 'sharded', fname), {n: s[n] for n in names}, metadata={'format': 'pt'})
        for n in names:
            weight_map[n] = fname
            total += len(tensor_bytes(s[n]))
    with open(os.path.join(OUT, 'sharded', 'model.safetensors.index.json'), 'w') as f:
        json.dump({'metadata': {'total_size': total}, 'weight_map': dict(sorted(weight_map.items()))}, f, indent=2)
        f.write('\n')
    dump(os.path.join(OUT, 'sharded.expected.json'), expected(s))

    # Real torch pickles (harmless: one tensor), to check refusal by magic bytes.
    torch.save({'w': torch.ones(2)}, os.path.join(OUT, 'torch_save_zip.pt'))
    torch.save({'w': torch.ones(2)}, os.path.join(OUT, 'torch_save_legacy.pt'), _use_new_zipfile_serialization=False)


def verify(path):
    """Independent reader: strict header checks, then every tensor decoded with torch."""
    data = open(path, 'rb').read()
    (n,) = struct.unpack('<Q', data[:8])
    assert n <= 100_000_000 and 8 + n <= len(data), 'bad header length'

    def no_dups(pairs):
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), f'duplicate keys {keys}'
        return dict(pairs)

    header = json.loads(data[8:8 + n].decode('utf-8'), object_pairs_hook=no_dups)
    assert data[8:9] == b'{', 'header must start with {'
    meta = header.pop('__metadata__', None)
    buf = data[8 + n:]
    pos, out = 0, {}
    for name, e in sorted(header.items(), key=lambda kv: tuple(kv[1]['data_offsets'])):
        b, end = e['data_offsets']
        assert b == pos, f'{name}: offsets not contiguous'
        dt = TORCH[e['dtype']]
        size = ST[dt][1] * int(np.prod(e['shape'], dtype=np.int64))
        assert end - b == size, f'{name}: size mismatch'
        raw = bytearray(buf[b:end])
        if dt == torch.bfloat16:
            t = torch.frombuffer(raw, dtype=torch.int16).view(torch.bfloat16) if raw else torch.zeros(0, dtype=dt)
        else:
            t = torch.frombuffer(raw, dtype=dt) if raw else torch.zeros(0, dtype=dt)
        t = t.reshape(e['shape'])
        out[name] = {'dtype': e['dtype'], 'shape': e['shape'], 'f32': f32_bits(t) if dt != torch.int64 else t.reshape(-1).tolist()}
        pos = end
    assert pos == len(buf), 'data not fully covered'
    print(json.dumps({'metadata': meta, 'tensors': out}, sort_keys=True))


if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == 'verify':
        verify(sys.argv[2])
    else:
        generate()
