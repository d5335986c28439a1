#!/usr/bin/python3
"""Writes torch.save checkpoints with Debian's python3-torch for linvideo's .pth reader tests.

  torch_save.py cases DIR                 the reader's cases (values the C++ test recomputes)
  torch_save.py from-safetensors IN OUT [--bf16]
                                          a safetensors file as a torch.save state dict, the way
                                          the official Wan 2.1 release ships its VAE and umT5
"""
import collections
import json
import os
import struct
import sys

import numpy as np
import torch


def arange(n, dtype=torch.float32):
    # 0, 0.5, 1.0, ... : exact in every floating dtype used here, recomputed by the C++ test.
    return (torch.arange(n, dtype=torch.float64) * 0.5).to(dtype)


class RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ('touch ' + self.marker,))


def cases(out):
    os.makedirs(out, exist_ok=True)
    sd = collections.OrderedDict()
    sd['blocks.0.weight'] = arange(12).reshape(3, 4)
    sd['blocks.0.bias'] = arange(3, torch.bfloat16)
    sd['half'] = arange(6, torch.float16).reshape(2, 3)
    sd['double'] = arange(4, torch.float64)
    sd['steps'] = torch.arange(6, dtype=torch.int64).reshape(2, 3)
    sd['mask'] = torch.tensor([True, False, True])
    sd['column'] = arange(20).reshape(4, 5)[:, 2]  # a strided view into a larger storage
    sd['tied'] = sd['blocks.0.weight']  # shares its storage
    sd['scalar'] = torch.tensor(2.5)
    sd['empty'] = torch.zeros(0, 3)
    sd._metadata = collections.OrderedDict([('', {'version': 1})])  # as module.state_dict() has
    torch.save(sd, os.path.join(out, 'state_dict.pth'))
    torch.save({'state_dict': {'w': arange(2), 'b': arange(3)}, 'epoch': 3, 'lr': 0.1},
               os.path.join(out, 'wrapped.pt'))
    torch.save({'w': arange(2), 'b': arange(3)}, os.path.join(out, 'legacy.pth'),
               _use_new_zipfile_serialization=False)
    torch.save([arange(2), arange(3)], os.path.join(out, 'list.pth'))
    torch.save({'w': arange(2), 'lr': 0.1}, os.path.join(out, 'not_tensor.pth'))
    torch.save({1: arange(2), 2: arange(3)}, os.path.join(out, 'int_key.pth'))
    torch.save({}, os.path.join(out, 'empty.pth'))
    # What LibTorch 1.13's unpickler lacks: a dict batch of one entry (SETITEM; also the last
    # batch of a state dict with 1000k + 1 entries) and nn.Parameter.
    torch.save({'w': arange(2)}, os.path.join(out, 'one_entry.pth'))
    torch.save({'w': torch.nn.Parameter(arange(2)), 'b': arange(3)},
               os.path.join(out, 'parameter.pth'))
    # A pickle that would run a command if unpickled by Python's pickle: must be refused unrun.
    torch.save({'w': arange(2), 'x': RunsACommand(os.path.join(out, 'ran'))},
               os.path.join(out, 'runs_command.pth'))
    # Saved with a newer pickle protocol (FRAME, MEMOIZE, STACK_GLOBAL, SHORT_BINUNICODE).
    torch.save(sd, os.path.join(out, 'protocol4.pth'), pickle_protocol=4)
    with open(os.path.join(out, 'state_dict.pth'), 'rb') as f:
        data = f.read()
    with open(os.path.join(out, 'truncated.pth'), 'wb') as f:
        f.write(data[:len(data) // 2])


ST_DTYPES = {'F32': np.float32, 'F64': np.float64, 'F16': np.float16, 'I64': np.int64,
             'I32': np.int32, 'I16': np.int16, 'I8': np.int8, 'U8': np.uint8, 'BOOL': np.bool_}


def read_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = collections.OrderedDict()
    for name, v in sorted(header.items()):
        if name == '__metadata__':
            continue
        begin, end = v['data_offsets']
        raw = data[begin:end]
        if v['dtype'] == 'BF16':
            t = torch.from_numpy(np.frombuffer(raw, dtype=np.int16).copy()).view(torch.bfloat16)
        else:
            t = torch.from_numpy(np.frombuffer(raw, dtype=ST_DTYPES[v['dtype']]).copy())
        out[name] = t.reshape(v['shape'])
    return out


def from_safetensors(src, dst, bf16):
    sd = read_safetensors(src)
    if bf16:
        sd = collections.OrderedDict(
            (k, v.to(torch.bfloat16) if v.is_floating_point() else v) for k, v in sd.items())
    torch.save(sd, dst)


if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == 'cases':
        cases(sys.argv[2])
    elif len(sys.argv) in (4, 5) and sys.argv[1] == 'from-safetensors':
        from_safetensors(sys.argv[2], sys.argv[3], sys.argv[4:] == ['--bf16'])
    else:
        sys.exit(__doc__)
