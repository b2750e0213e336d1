#!/usr/bin/python3
"""Exports the reference DiT to ONNX for the ONNX Runtime side of `bench/cpu_bench.py forward` (issue 16).

    /usr/bin/python3 bench/ort_export.py --weights W.safetensors --out W.onnx [--batch 2]

The graph is tools/torch_fast_dit.py's forward (torch's fused built-ins, original-layout numerics) traced by
`torch.onnx.export` at opset 17, with the shapes fixed (batch, 4 × input_size²). Inputs: x [B, 4, S, S] float32,
t [B] float32, y [B] int64; output: out [B, 8, S, S].

DiT's LayerNorms have no affine parameters. The opset-17 exporter (torch 1.13) writes such a LayerNorm as a
LayerNormalization node whose Scale input is an empty name: its own checker fails the export, and ONNX Runtime 1.32
rejects the file ("[ErrorCode:InvalidGraph] ... input 1 is marked single but has an empty string in the graph",
measured on the tiny fixture); with a unit scale but no bias (an empty
optional input) ONNX Runtime 1.32's extended graph optimisations crash with a segmentation fault (measured here). The
exported copy therefore calls F.layer_norm with a unit weight and a zero bias: x·1 + 0 is exact in float32, so the
function is unchanged — this script
proves it by comparing PyTorch's forward with and without the unit weight bit for bit, and it writes the forward's
inputs and PyTorch's output next to the model (W.onnx.io.safetensors: x, t, y, out) for the C# bench to check ONNX
Runtime's output and ours against. Needs Debian's python3-torch and python3-onnx (bench dependency only).
"""
import argparse
import os
import sys
import types

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import dit_reference as ref  # noqa: E402
import safetensors_io  # noqa: E402
import torch_fast_dit  # noqa: E402


def unit_weight_functional():
    """torch.nn.functional with layer_norm given an explicit unit weight and zero bias (the rest untouched)."""
    def layer_norm(x, shape, weight=None, bias=None, eps=1e-5):
        if weight is None:
            weight = torch.ones(shape, dtype=x.dtype)
        if bias is None:
            bias = torch.zeros(shape, dtype=x.dtype)
        return F.layer_norm(x, shape, weight, bias, eps)
    ns = types.SimpleNamespace(**{k: getattr(F, k) for k in dir(F) if not k.startswith("__")})
    ns.layer_norm = layer_norm
    return ns


class Wrapper(torch.nn.Module):
    """The fast forward as a module whose buffers are the checkpoint's tensors: the tracer then writes them as
    initializers (not Constant nodes), which torch.onnx stores as external data beside the model when the weights pass
    protobuf's 2 GB limit (DiT-XL/2: 2.7 GB; as Constant nodes the export fails its own proto check)."""

    def __init__(self, fast):
        super().__init__()
        self.fast = fast
        seen = set()

        def register(obj, name):
            if isinstance(obj, torch.Tensor):
                if id(obj) not in seen:
                    seen.add(id(obj))
                    self.register_buffer(f"w{len(seen)}_{name}"[:60].replace(".", "_"), obj, persistent=True)
            elif isinstance(obj, dict):
                for k, v in obj.items():
                    register(v, f"{name}_{k}")
            elif isinstance(obj, (list, tuple)):
                for i, v in enumerate(obj):
                    register(v, f"{name}_{i}")

        for key, value in vars(fast.m).items():
            register(value, key)

    def forward(self, x, t, y):
        return self.fast.forward(x, t, y)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import onnx  # noqa: F401  (fails early with a clear message when python3-onnx is missing)

    ref.set_threads(args.threads)
    model = ref.load_dit(args.weights, allow_pos_embed_recompute=True)
    fast = torch_fast_dit.FastDiT(model)
    cfg = model.cfg
    size = cfg.input_size or 32
    g = torch.Generator().manual_seed(0)
    x = torch.randn((args.batch, cfg.in_channels, size, size), generator=g)
    t = torch.tensor([999.0, 3.0][: args.batch] + [500.0 + i for i in range(max(0, args.batch - 2))])
    y = torch.arange(args.batch, dtype=torch.int64) % (cfg.num_classes + 1)

    with torch.inference_mode():
        plain = fast.forward(x, t, y)
        reference = model.forward(x, t, y)
    torch_fast_dit.F = unit_weight_functional()   # the exported copy: LayerNorm with an explicit unit scale
    try:
        with torch.inference_mode():
            unit = fast.forward(x, t, y)
        if not torch.equal(plain, unit):
            sys.exit(f"unit LayerNorm weight changed the output: max abs diff {(plain - unit).abs().max().item():.3e}")
        print("unit LayerNorm weight: output bit-identical to the affine-free forward")
        with torch.no_grad():
            torch.onnx.export(Wrapper(fast), (x, t, y), args.out, opset_version=17, input_names=["x", "t", "y"],
                              output_names=["out"], do_constant_folding=True)
    finally:
        torch_fast_dit.F = F

    import onnx
    onnx.checker.check_model(args.out)                # by path: works past 2 GB (external data)
    m = onnx.load(args.out, load_external_data=False)  # the graph; the initializers' shapes are there without their data
    # The traced weights become Constant nodes (initializers only when given as parameters): look in both.
    consts = {i.name: i for i in m.graph.initializer}
    consts.update({n.output[0]: n.attribute[0].t for n in m.graph.node if n.op_type == "Constant"})
    norms = [n for n in m.graph.node if n.op_type == "LayerNormalization"]
    for n in norms:
        scale = consts.get(n.input[1]) if len(n.input) > 1 else None
        dims = list(scale.dims) if scale is not None else None
        if dims != [cfg.hidden_size]:
            sys.exit(f"{n.name}: LayerNormalization scale has shape {dims}, expected [{cfg.hidden_size}]")
    ops = sorted({n.op_type for n in m.graph.node})
    print(f"wrote {args.out}: {len(m.graph.node)} nodes, {len(norms)} LayerNormalization with a [{cfg.hidden_size}] unit "
          f"scale, ops {', '.join(ops)}")
    rel = ((plain - reference).abs().max() / reference.abs().max()).item()
    print(f"fast vs op-by-op reference: max relative difference {rel:.3e}")
    io = args.out + ".io.safetensors"
    safetensors_io.save_file({"x": x, "t": t, "y": y, "out": plain.contiguous()}, io,
                             {"torch": torch.__version__, "onnx": onnx.__version__, "opset": "17"})
    print(f"wrote {io}")


if __name__ == "__main__":
    main()
