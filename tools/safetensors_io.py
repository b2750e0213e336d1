#!/usr/bin/python3
"""A small, dependency-free safetensors reader and writer for the PyTorch reference tools.

Debian's python3-torch has no `safetensors` package, so this implements the standard format directly:

    [8 bytes]  N = length of the JSON header, unsigned 64-bit little-endian
    [N bytes]  JSON object: {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..],
               "data_offsets": [begin, end]}, ...}; offsets are relative to the start of the data section;
               the header is padded with spaces (0x20) so that 8 + N is a multiple of 8
    [rest]     the data section: raw little-endian tensor bytes, row-major (C order)

The writer lays the tensors out back to back, in header order, with no gaps. The reader validates the header
(sizes, offsets inside the data section, no overlaps, byte counts that match dtype x shape, no bytes left over)
and rejects anything else with a message that names the file and the tensor.

Supported dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL (torch 1.13 has no unsigned 16/32/64-bit types).

API:
    tensors, metadata = load_file(path)            # dict name -> torch.Tensor (a private copy), dict str -> str
    header, metadata = read_header(path)           # the parsed header only (no tensor data is read)
    t = load_tensor(path, name)                    # one tensor
    save_file(tensors, path, metadata=None)        # dict (ordered) name -> torch.Tensor
    with StreamingWriter(path, [(name, dtype, shape), ...], metadata) as w:
        w.write(name, tensor)                      # tensor by tensor, in the declared order; holds one at a time

Run `/usr/bin/python3 tools/safetensors_io.py FILE` to print a file's header.
"""

import json
import os
import struct
import sys

import numpy as np
import torch

if sys.byteorder != "little":  # pragma: no cover - every supported machine is little-endian
    raise RuntimeError("safetensors_io assumes a little-endian host")

# safetensors dtype name -> (torch dtype, bytes per element)
DTYPES = {
    "F64": (torch.float64, 8),
    "F32": (torch.float32, 4),
    "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2),
    "I64": (torch.int64, 8),
    "I32": (torch.int32, 4),
    "I16": (torch.int16, 2),
    "I8": (torch.int8, 1),
    "U8": (torch.uint8, 1),
    "BOOL": (torch.bool, 1),
}
TORCH_TO_NAME = {v[0]: k for k, v in DTYPES.items()}

# Largest header this reader accepts (the Rust reference implementation uses 100 MB as well).
MAX_HEADER_BYTES = 100_000_000


class SafetensorsError(ValueError):
    """A malformed or unsupported safetensors file."""


def dtype_name(dtype):
    """The safetensors name of a torch dtype (raises for unsupported dtypes)."""
    try:
        return TORCH_TO_NAME[dtype]
    except KeyError:
        raise SafetensorsError(f"dtype {dtype} is not supported (supported: {', '.join(DTYPES)})") from None


def _numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def _parse_header(raw, path, file_size):
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{path}: header is not valid UTF-8 JSON ({e})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise SafetensorsError(f"{path}: __metadata__ must map strings to strings")
    data_size = file_size - 8 - len(raw)
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise SafetensorsError(f"{path}: entry '{name}' must have exactly dtype, shape and data_offsets")
        if info["dtype"] not in DTYPES:
            raise SafetensorsError(f"{path}: tensor '{name}' has unsupported dtype {info['dtype']!r} "
                                   f"(supported: {', '.join(DTYPES)})")
        shape = info["shape"]
        if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise SafetensorsError(f"{path}: tensor '{name}' has an invalid shape {shape!r}")
        offs = info["data_offsets"]
        if (not isinstance(offs, list) or len(offs) != 2 or not all(isinstance(o, int) for o in offs)
                or not 0 <= offs[0] <= offs[1] <= data_size):
            raise SafetensorsError(f"{path}: tensor '{name}' has data_offsets {offs!r} outside the data section "
                                   f"of {data_size} bytes")
        want = _numel(shape) * DTYPES[info["dtype"]][1]
        if offs[1] - offs[0] != want:
            raise SafetensorsError(f"{path}: tensor '{name}' ({info['dtype']} {shape}) needs {want} bytes "
                                   f"but data_offsets span {offs[1] - offs[0]}")
        spans.append((offs[0], offs[1], name))
    spans.sort()
    pos = 0
    for begin, end, name in spans:
        if begin != pos:
            what = "overlaps the previous tensor" if begin < pos else f"leaves a gap of {begin - pos} bytes"
            raise SafetensorsError(f"{path}: tensor '{name}' {what}")
        pos = end
    if pos != data_size:
        raise SafetensorsError(f"{path}: data section is {data_size} bytes but tensors cover {pos}")
    return header, metadata


def _open_header(f, path):
    file_size = os.fstat(f.fileno()).st_size
    head = f.read(8)
    if len(head) != 8:
        raise SafetensorsError(f"{path}: file is shorter than 8 bytes")
    (n,) = struct.unpack("<Q", head)
    if n > MAX_HEADER_BYTES or 8 + n > file_size:
        raise SafetensorsError(f"{path}: header length {n} is impossible for a file of {file_size} bytes")
    raw = f.read(n)
    header, metadata = _parse_header(raw, path, file_size)
    return header, metadata, 8 + n


def read_header(path):
    """Returns (header, metadata): header maps tensor name -> {dtype, shape, data_offsets}, in file order."""
    with open(path, "rb") as f:
        header, metadata, _ = _open_header(f, path)
    return header, metadata


def _read_tensor(f, data_start, info):
    dtype, size = DTYPES[info["dtype"]]
    begin, end = info["data_offsets"]
    buf = bytearray(end - begin)
    if buf:
        f.seek(data_start + begin)
        if f.readinto(buf) != len(buf):
            raise SafetensorsError("unexpected end of file")
        t = torch.frombuffer(buf, dtype=dtype)
    else:
        t = torch.empty(0, dtype=dtype)
    return t.reshape(info["shape"])


def load_file(path, names=None):
    """Loads every tensor (or only `names`) as a private torch tensor. Returns (tensors, metadata)."""
    with open(path, "rb") as f:
        header, metadata, data_start = _open_header(f, path)
        if names is not None:
            missing = [n for n in names if n not in header]
            if missing:
                raise KeyError(f"{path}: no tensor named {', '.join(missing)}")
        tensors = {}
        for name, info in header.items():
            if names is None or name in names:
                tensors[name] = _read_tensor(f, data_start, info)
    return tensors, dict(metadata)


def load_tensor(path, name):
    return load_file(path, [name])[0][name]


def _tensor_bytes(t):
    """A contiguous little-endian byte view of a CPU tensor (a buffer object, copied only when needed)."""
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)  # numpy has no bfloat16; the bytes are the same
    return memoryview(np.ascontiguousarray(t.numpy())).cast("B")


def _header_bytes(entries, metadata):
    """entries: list of (name, dtype_name, shape). Returns the padded header bytes (length prefix included)."""
    header = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise SafetensorsError(f"metadata must map str -> str (got {k!r}: {v!r})")
        header["__metadata__"] = dict(metadata)
    pos = 0
    for name, dt, shape in entries:
        if name == "__metadata__" or name in header:
            raise SafetensorsError(f"duplicate or reserved tensor name '{name}'")
        if dt not in DTYPES:
            raise SafetensorsError(f"tensor '{name}': unsupported dtype {dt}")
        n = _numel(shape) * DTYPES[dt][1]
        header[name] = {"dtype": dt, "shape": [int(s) for s in shape], "data_offsets": [pos, pos + n]}
        pos += n
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("utf-8")
    raw += b" " * ((8 - len(raw) % 8) % 8)
    return struct.pack("<Q", len(raw)) + raw


class StreamingWriter:
    """Writes a safetensors file tensor by tensor, so a multi-GB checkpoint never needs two copies in memory.

    The header is written first from the declared (name, dtype, shape) list; `write` must then be called once per
    tensor in the declared order with a tensor of exactly that dtype and shape. The file is written to
    `path + '.partial'` and renamed on a successful close, so a failure never leaves a half-written file at `path`.
    """

    def __init__(self, path, entries, metadata=None):
        self.path = path
        self.entries = [(n, d if isinstance(d, str) else dtype_name(d), tuple(int(s) for s in shape))
                        for n, d, shape in entries]
        self.next = 0
        self.tmp = path + ".partial"
        self.f = open(self.tmp, "wb")
        self.f.write(_header_bytes(self.entries, metadata))

    def write(self, name, tensor):
        if self.next >= len(self.entries):
            raise SafetensorsError(f"write('{name}'): all declared tensors are already written")
        want_name, want_dt, want_shape = self.entries[self.next]
        if name != want_name:
            raise SafetensorsError(f"write('{name}'): expected '{want_name}' next (tensors go in declared order)")
        if dtype_name(tensor.dtype) != want_dt or tuple(tensor.shape) != want_shape:
            raise SafetensorsError(f"write('{name}'): got {dtype_name(tensor.dtype)} {list(tensor.shape)}, "
                                   f"declared {want_dt} {list(want_shape)}")
        if tensor.numel():
            self.f.write(_tensor_bytes(tensor))
        self.next += 1

    def close(self):
        if self.f is None:
            return
        self.f.close()
        self.f = None
        if self.next != len(self.entries):
            os.unlink(self.tmp)
            raise SafetensorsError(f"{self.path}: only {self.next} of {len(self.entries)} declared tensors were written")
        os.replace(self.tmp, self.path)

    def abort(self):
        if self.f is not None:
            self.f.close()
            self.f = None
            os.unlink(self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def save_file(tensors, path, metadata=None):
    """Writes an (ordered) dict name -> torch.Tensor; tensors are laid out in the dict's order."""
    entries = [(name, dtype_name(t.dtype), tuple(t.shape)) for name, t in tensors.items()]
    with StreamingWriter(path, entries, metadata) as w:
        for name, t in tensors.items():
            w.write(name, t)


def main(argv):
    if len(argv) != 2:
        print("usage: /usr/bin/python3 tools/safetensors_io.py FILE", file=sys.stderr)
        return 2
    header, metadata = read_header(argv[1])
    for k, v in metadata.items():
        print(f"meta {k} = {v}")
    for name, info in header.items():
        print(f"{name}\t{info['dtype']}\t{info['shape']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
