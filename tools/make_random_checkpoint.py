#!/usr/bin/python3
"""Writes a random-weight DiT checkpoint of a named preset, tensor by tensor (never two copies in memory).

    /usr/bin/python3 tools/make_random_checkpoint.py --preset XL/2 [--input-size 32] [--layout original|diffusers]
        [--dtype f32|f16|bf16] [--num-classes 1000] [--seed 0] --out FILE

Presets (model-spec §1.1): S (depth 12, hidden 384, heads 6), B (12, 768, 12), L (24, 1024, 16), XL (28, 1152, 16),
each with patch 2, 4 or 8 ("XL/2", "S/8", ...); 4 input channels, learned sigma (8 output channels), 1000 classes
(+1 null row). The weights metadata of docs/dump-format-extensions.md is written (num_heads, depth, hidden_size,
patch_size, input_size, in_channels, num_classes, learn_sigma, layout, format=blockdance.weights/1, plus seed and
init). DiT-XL/2 in f32 is about 2.7 GB (original layout) or 3.0 GB (diffusers layout, embedders copied per block).

Values: pos_embed is the exact 2-D sin-cos table (original layout); every other tensor is normal with the fan-in
scaled std of tools/make_fixtures.py (so activations stay O(1)), drawn from a generator seeded by (seed, original
tensor name). The same seed therefore gives the same network in both layouts (the diffusers file is the conversion of
the original one), and in every dtype (f16/bf16 are the f32 values rounded).
"""

import argparse
import os
import re
import sys
import time
import zlib

import torch

sys.path.insert(0, os.path.dirname(__file__))
import dit_reference as ref  # noqa: E402
import make_fixtures  # noqa: E402
import safetensors_io  # noqa: E402

PRESETS = {"S": (12, 384, 6), "B": (12, 768, 12), "L": (24, 1024, 16), "XL": (28, 1152, 16)}
DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def preset_config(preset, input_size=32, num_classes=1000):
    m = re.fullmatch(r"(S|B|L|XL)/(2|4|8)", preset.strip(), flags=re.IGNORECASE)
    if not m:
        raise ValueError(f"unknown preset {preset!r}: use S|B|L|XL followed by /2, /4 or /8 (e.g. XL/2)")
    depth, hidden, heads = PRESETS[m.group(1).upper()]
    p = int(m.group(2))
    if input_size % p:
        raise ValueError(f"input size {input_size} is not a multiple of the patch size {p}")
    return ref.DiTConfig(depth=depth, hidden_size=hidden, num_heads=heads, patch_size=p, in_channels=4,
                         out_channels=8, num_classes=num_classes, input_size=input_size)


class OriginalTensors:
    """Deterministic original-layout tensors, generated on demand (one generator per tensor name)."""

    def __init__(self, cfg, seed):
        self.cfg, self.seed = cfg, seed
        self.shapes = dict(ref.original_shapes(cfg))
        self._recent = {}               # the fused qkv weight and bias whose chunks are being written
        self._embedders = {}            # t/y embedders, copied into every diffusers block

    def get(self, name):
        if name in self._recent:
            return self._recent[name]
        if name in self._embedders:
            return self._embedders[name]
        shape = self.shapes[name]
        if name == "pos_embed":
            g = self.cfg.input_size // self.cfg.patch_size
            t = ref.sincos_pos_embed_2d(self.cfg.hidden_size, g, g).reshape(1, g * g, -1)
        else:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + zlib.crc32(name.encode()))
            t = torch.randn(shape, generator=gen) * make_fixtures.init_std(name, shape, self.cfg.hidden_size)
        if name.startswith(("t_embedder.", "y_embedder.")):
            self._embedders[name] = t
        if ".attn.qkv." in name:
            if len(self._recent) >= 2:
                self._recent.pop(next(iter(self._recent)))
            self._recent[name] = t
        return t


def write_checkpoint(cfg, layout, dtype, out, seed=0, log=None):
    src = OriginalTensors(cfg, seed)
    if layout == "original":
        plan = [(n, s, n, None) for n, s in ref.original_shapes(cfg)]
    elif layout == "diffusers":
        plan = ref.diffusers_plan(cfg)
    else:
        raise ValueError(f"unknown layout {layout!r}")
    dname = safetensors_io.dtype_name(dtype)
    meta = cfg.metadata(layout)
    meta.update({"seed": str(seed), "init": "random (tools/make_random_checkpoint.py)"})
    with safetensors_io.StreamingWriter(out, [(n, dname, s) for n, s, _, _ in plan], meta) as w:
        for i, (name, _, orig, chunk) in enumerate(plan):
            t = src.get(orig)
            if chunk is not None:
                t = torch.chunk(t, 3, dim=0)[chunk]
            w.write(name, t.to(dtype).contiguous())
            if log and (i % 50 == 0 or i == len(plan) - 1):
                log(f"  {i + 1}/{len(plan)} {name}")
    return sum(s_numel(s) for _, s, _, _ in plan)


def s_numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", required=True, help="S/2, B/2, L/2, XL/2 (or /4, /8)")
    ap.add_argument("--input-size", type=int, default=32, help="latent side (32 = 256 px images)")
    ap.add_argument("--layout", choices=("original", "diffusers"), default="original")
    ap.add_argument("--dtype", choices=tuple(DTYPES), default="f32")
    ap.add_argument("--num-classes", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    cfg = preset_config(args.preset, args.input_size, args.num_classes)
    t0 = time.perf_counter()
    n = write_checkpoint(cfg, args.layout, DTYPES[args.dtype], args.out, args.seed,
                         log=lambda s: print(s, file=sys.stderr))
    print(f"wrote {args.out}: DiT-{args.preset.upper()} layout={args.layout} dtype={args.dtype} "
          f"{n / 1e6:.1f} M values, {os.path.getsize(args.out) / 1e9:.3f} GB in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
