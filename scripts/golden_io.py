# Shared by the gen_golden_*.py scripts: writes a safetensors file by hand (there is no
# safetensors package for Debian's python3): 8-byte LE header length, JSON header padded with
# spaces to a multiple of 8, raw little-endian data.
import json
import struct

import torch


def write_safetensors(path, tensors, metadata=None, ints='I32', sort=True):
    """Floats are stored as F32; integer tensors as `ints` ('I32' or 'I64'). `sort` orders the
    data by key (the header is a JSON object either way)."""
    header = {}
    if metadata:
        header['__metadata__'] = {k: str(v) for k, v in metadata.items()}
    blobs, offset = [], 0
    for name in (sorted(tensors) if sort else tensors):
        t = tensors[name].detach().contiguous()
        if t.dtype.is_floating_point:
            dt, raw = 'F32', t.to(torch.float32).numpy().astype('<f4').tobytes()
        elif ints == 'I64':
            dt, raw = 'I64', t.to(torch.int64).numpy().astype('<i8').tobytes()
        else:
            dt, raw = 'I32', t.to(torch.int32).numpy().astype('<i4').tobytes()
        header[name] = {'dtype': dt, 'shape': list(t.shape), 'data_offsets': [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    hb = json.dumps(header, separators=(',', ':')).encode('utf-8')
    hb += b' ' * (-len(hb) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)
