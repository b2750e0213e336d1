#!/usr/bin/python3
"""Times the PyTorch reference DiT forward (tools/dit_reference.py) on the CPU.

    /usr/bin/python3 tools/bench_torch_forward.py --weights W.safetensors [--batch 2] [--threads T] [--repeat 10]
        [--warmup 2] [--input-size S] [--num-heads H] [--numerics original|diffusers] [--seed 0]

The model is built once (weights converted to fp32); each timed call is one full forward of a [B, 4, S, S] batch
under torch.inference_mode(), measured with time.perf_counter. The inputs are seeded random latents, timesteps and
class labels (the same for every call). --input-size defaults to the checkpoint's input_size. Prints the
configuration and min/mean/max, and as its LAST line `median_ms=<number>`.
"""

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
import dit_reference as ref  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's default)")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--input-size", type=int, help="latent side (default: the checkpoint's input_size, else 32)")
    ap.add_argument("--num-heads", type=int, help="needed when the file's metadata lacks num_heads")
    ap.add_argument("--numerics", choices=ref.LAYOUTS, help="default: the checkpoint's layout")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--impl", choices=["reference", "fast"], default="reference",
                    help="reference: dit_reference.py's op-by-op forward; fast: tools/torch_fast_dit.py (torch's fused built-ins)")
    args = ap.parse_args(argv)
    if args.repeat < 1 or args.batch < 1 or args.warmup < 0:
        ap.error("--repeat and --batch must be >= 1, --warmup >= 0")
    ref.set_threads(args.threads)

    t0 = time.perf_counter()
    model = ref.load_dit(args.weights, num_heads=args.num_heads, numerics=args.numerics,
                         allow_pos_embed_recompute=True)
    load_s = time.perf_counter() - t0
    forward = model.forward
    if args.impl == "fast":
        import torch_fast_dit  # noqa: E402
        forward = torch_fast_dit.FastDiT(model).forward
    cfg = model.cfg
    size = args.input_size or cfg.input_size or 32
    g = torch.Generator().manual_seed(args.seed)
    x = torch.randn((args.batch, cfg.in_channels, size, size), generator=g)
    t = torch.randint(0, 1000, (args.batch,), generator=g)
    y = torch.randint(0, cfg.num_classes + 1, (args.batch,), generator=g)
    tokens = (size // cfg.patch_size) ** 2
    print(f"weights={args.weights} layout={model.layout} numerics={model.numerics_name} depth={cfg.depth} "
          f"hidden={cfg.hidden_size} heads={cfg.num_heads} patch={cfg.patch_size} input={size} tokens={tokens} "
          f"batch={args.batch} impl={args.impl} threads={torch.get_num_threads()} torch={torch.__version__} load_s={load_s:.2f}")

    times = []
    with torch.inference_mode():
        for i in range(args.warmup + args.repeat):
            s = time.perf_counter()
            out = forward(x, t, y)
            ms = (time.perf_counter() - s) * 1e3
            if i >= args.warmup:
                times.append(ms)
    if not torch.isfinite(out).all():
        print("warning: the output has non-finite values", file=sys.stderr)
    print(f"repeat={len(times)} warmup={args.warmup} min_ms={min(times):.3f} mean_ms={statistics.mean(times):.3f} "
          f"max_ms={max(times):.3f}")
    print(f"median_ms={statistics.median(times):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
