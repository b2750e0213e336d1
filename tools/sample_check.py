#!/usr/bin/python3
"""Generates class-conditional samples from an exported DiT with dit_reference.py's sampler, scores them with the
shapes classifier and writes a PNG grid to look at (one row per class).

Sampling = the original DiT diffusion of dit_reference.py (`sample`, timestep_spacing "fractional"): DDIM (eta 0)
over `space_timesteps(1000, "50")` by default, classifier-free guidance on the first 3 output channels (for this
3-channel pixel model: all of ε) with the null class `num_classes`. Initial noise: one torch.Generator seeded with
--seed draws noise [N, 3, 32, 32] for the class-major batch (class c, sample j at row c·per_class + j), then the
per-step noise of the sampler (unused by DDIM eta 0 except for shape). The result is clamped to [-1, 1] only for the
PNG and the classifier (the saved tensor is the raw sampler output).

    /usr/bin/python3 tools/sample_check.py [--weights models/dit-shapes-32.safetensors] [--per-class 8]
        [--seed 0] [--steps 50] [--cfg 4.0] [--sampler ddim|ancestral] [--threads 2] [--batch 64]
        [--out-dir .cache/sample-check]
Writes OUT/samples.png, OUT/samples.safetensors (images [N,3,32,32] f32 raw sampler output, labels [N] i64;
readable by `shapes_classifier.py score`), OUT/score.json; prints the score JSON (accuracy, per-class accuracy,
Fréchet distance of classifier features vs real images, and the same-N real floor) and the time taken.
"""

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dit_reference as ref  # noqa: E402
import safetensors_io  # noqa: E402
import shapes_classifier  # noqa: E402
import shapes_data  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def generate(weights, per_class=8, seed=0, steps=50, cfg=4.0, sampler="ddim", batch=64, classes=None, log=None):
    """Returns (images [N,3,32,32] raw, labels [N]) — class-major."""
    model = ref.load_dit(weights)
    C = model.cfg.num_classes
    classes = list(range(C)) if classes is None else list(classes)
    labels = torch.tensor([c for c in classes for _ in range(per_class)], dtype=torch.int64)
    g = torch.Generator().manual_seed(seed)
    s = model.cfg.input_size
    noise = torch.randn(len(labels), model.cfg.in_channels, s, s, generator=g)
    out = []
    with torch.inference_mode():
        for i in range(0, len(labels), batch):
            t0 = time.perf_counter()
            out.append(ref.sample(model, noise[i:i + batch], labels[i:i + batch], steps=steps, cfg_scale=cfg,
                                  sampler=sampler, generator=g))
            if log:
                log(f"  samples {i}..{i + len(out[-1]) - 1}: {time.perf_counter() - t0:.1f} s")
    return torch.cat(out), labels


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=os.path.join(REPO, "models", "dit-shapes-32.safetensors"))
    ap.add_argument("--per-class", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--cfg", type=float, default=4.0)
    ap.add_argument("--sampler", choices=("ddim", "ancestral"), default="ddim")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out-dir", default=os.path.join(REPO, ".cache", "sample-check"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out_dir, exist_ok=True)
    t0 = time.perf_counter()
    images, labels = generate(args.weights, args.per_class, args.seed, args.steps, args.cfg, args.sampler,
                              args.batch, log=lambda m: print(m, file=sys.stderr, flush=True))
    gen_s = time.perf_counter() - t0
    safetensors_io.save_file({"images": images.contiguous(), "labels": labels},
                             os.path.join(args.out_dir, "samples.safetensors"),
                             {"weights": os.path.basename(args.weights), "seed": str(args.seed),
                              "steps": str(args.steps), "cfg_scale": str(args.cfg), "sampler": args.sampler,
                              "class_names": ",".join(shapes_data.CLASS_NAMES)})
    shapes_data.save_grid(images.clamp(-1, 1).numpy(), os.path.join(args.out_dir, "samples.png"),
                          ncol=args.per_class, scale=3)
    res = shapes_classifier.score_images(images, labels)
    res.update({"weights": args.weights, "seed": args.seed, "steps": args.steps, "cfg_scale": args.cfg,
                "sampler": args.sampler, "per_class": args.per_class, "generate_seconds": round(gen_s, 1),
                "out_of_range_fraction": float((images.abs() > 1).float().mean())})
    with open(os.path.join(args.out_dir, "score.json"), "w") as f:
        json.dump(res, f, indent=1)
    brief = {k: res[k] for k in ("n", "accuracy", "per_class_accuracy", "fd", "fd_real_same_n", "mean_confidence",
                                 "generate_seconds")}
    print(json.dumps(brief, indent=1))
    print(f"wrote {args.out_dir}/samples.png (rows: {', '.join(shapes_data.CLASS_NAMES)}), samples.safetensors, "
          f"score.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
