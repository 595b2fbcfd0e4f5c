"""safetensors read/write for float32 tensors (the format is 8 bytes of header length, a JSON header,
raw little-endian data), so the twin needs nothing beyond torch and numpy."""
import json
import struct

import numpy as np
import torch

_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I32": np.int32, "I64": np.int64}


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        if e["dtype"] == "BF16":
            lo, hi = e["data_offsets"]
            raw = np.frombuffer(data[base + lo:base + hi], dtype=np.uint16).astype(np.uint32) << 16
            arr = raw.view(np.float32)
        else:
            lo, hi = e["data_offsets"]
            arr = np.frombuffer(data[base + lo:base + hi], dtype=_DTYPES[e["dtype"]])
        out[name] = torch.from_numpy(arr.copy().reshape(e["shape"]))
    return out


def save_safetensors(path, tensors):
    """tensors: name -> tensor, written as float32 in sorted name order."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        b = tensors[name].detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
