#!/usr/bin/python3
"""Procedural "shapes" data set: 32x32 RGB images in 8 classes whose identity lies in the global structure.

Every image is a function of (seed, index) only: image i of seed s is drawn from its own generator
np.random.default_rng([s, i]) (parameters) and rendered with vectorised numpy, so any subset of any stream can be
regenerated exactly, in any order and batch size (training resumes by regenerating the batches of the steps it has
not done yet).

Classes (index order, the class_names metadata of the exported models):
    0 disc      filled circle
    1 square    filled square
    2 triangle  filled equilateral triangle
    3 cross     plus sign (two crossing bars)
    4 ring      annulus
    5 star      five-pointed star
    6 bars      three parallel bars
    7 crescent  a disc with a shifted disc cut out

Each image: one shape of random position, size, rotation and colour, with a shading gradient across it, on a textured background: two random colours blended by a smooth
random plane wave (period 20..60 px: low-frequency structure) plus a fine random pattern (stripes or checks of
period 4.5..7 px, amplitude 3..7 %: the detail) — so both global structure and fine detail are present. Shape and background colours keep a
minimum contrast. Edges are anti-aliased by 4x4 supersampling. Pixel values are quantised to 8 bits and returned as
float32 in [-1, 1] (x = u8 / 127.5 - 1), layout [N, 3, 32, 32].

Two spreads of position, size and rotation (the same random draws, mapped to different ranges):
    narrow (the default: the data set of the trained DiT, and the "real" images of the Fréchet distance):
        centre within ±3 px of the image centre, radius 9..11 px, rotation ±15° about the upright pose;
    wide (the classifier's training set, so that it judges shapes wherever they are):
        centre anywhere that keeps the shape mostly inside the frame, radius 8..12 px, rotation ±30°.
The narrow spread is what a 3.7M-parameter DiT learns in a one-hour CPU run (models/README.md): with the wide one it
learned colours and textures but not the shapes (25 % class accuracy after 7000 steps).

API (every function takes spread="narrow" | "wide"):
    CLASS_NAMES                                    # tuple of 8 names
    images, labels = generate(seed, indices)       # indices: iterable of ints
    images, labels = generate_range(seed, start, n)
    images, labels = generate_balanced(seed, per_class, start=0)   # class-major, per_class of each class
    images, labels = generate_counts(seed, counts, start=0)        # counts[c] of class c, class-major
    label_of(seed, i)                              # class of image i (uniform over the 8 classes)
    save_grid(images, path, ncol, scale=3)         # PNG grid of [N, 3, H, W] images in [-1, 1]
Command line:
    /usr/bin/python3 tools/shapes_data.py grid --out shapes.png [--seed 0] [--per-class 8] [--scale 3] [--spread narrow]
    /usr/bin/python3 tools/shapes_data.py dump --out real.safetensors [--seed 0] [--start 0] [--n 1000] [--spread narrow]
        writes tensors images [N,3,32,32] f32 in [-1,1] and labels [N] i64 (the classifier's `score` input format)
    /usr/bin/python3 tools/shapes_data.py bench [--n 2048]     generation speed
"""

import argparse
import math
import os
import sys
import time

import numpy as np

CLASS_NAMES = ("disc", "square", "triangle", "cross", "ring", "star", "bars", "crescent")
NUM_CLASSES = len(CLASS_NAMES)
SIZE = 32
SS = 4  # supersampling factor per axis
SPREADS = {
    "narrow": dict(size=(9.0, 11.0), jitter=3.0, rotation=math.pi / 12),
    "wide": dict(size=(8.0, 12.0), jitter=None, rotation=math.pi / 6),   # jitter None: anywhere, margin 0.8·size
}

# Supersampled pixel-centre coordinates (in pixel units, 0..32), shape [SIZE*SS]
_SUB = (np.arange(SIZE * SS, dtype=np.float32) + 0.5) / SS
_PIX = np.arange(SIZE, dtype=np.float32) + 0.5


def _params(seed, i, spread="narrow"):
    """All random choices of image i (a dict of numpy scalars/arrays)."""
    sp = SPREADS[spread]
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(i)])
    label = int(rng.integers(NUM_CLASSES))
    size = rng.uniform(*sp["size"])
    u = rng.uniform(0.0, 1.0, size=2)
    if sp["jitter"] is None:
        margin = 0.8 * size
        cx, cy = margin + u * (SIZE - 2 * margin)
    else:
        cx, cy = SIZE / 2 + (2 * u - 1) * sp["jitter"]
    angle = rng.uniform(-sp["rotation"], sp["rotation"])
    # colours: shape colour vs the background's two colours, with a minimum contrast to both
    for _ in range(100):
        fg = rng.uniform(0.0, 1.0, size=3)
        bg1 = rng.uniform(0.0, 1.0, size=3)
        bg2 = np.clip(bg1 + rng.uniform(-0.3, 0.3, size=3), 0.0, 1.0)
        lum = np.array([0.299, 0.587, 0.114])
        d1, d2 = np.linalg.norm(fg - bg1), np.linalg.norm(fg - bg2)
        if min(d1, d2) > 0.6 and abs(lum @ fg - lum @ (bg1 + bg2) / 2) > 0.15:
            break
    # smooth background field: one plane wave (low frequency structure)
    f = rng.uniform(0.1, 0.3)                   # radians per pixel (period 20..60 px)
    th = rng.uniform(0, 2 * math.pi)
    wave = (f * math.cos(th), f * math.sin(th), rng.uniform(0, 2 * math.pi))
    # fine pattern (the detail): 0 = stripes, 1 = checks
    pattern = int(rng.integers(2))
    pf = rng.uniform(0.9, 1.4)                  # radians per pixel (period ~4.5..7 px)
    pth = rng.uniform(0, math.pi)
    pamp = rng.uniform(0.03, 0.07)
    # shading of the shape: linear gradient direction and strength
    sth = rng.uniform(0, 2 * math.pi)
    samp = rng.uniform(0.0, 0.2)
    return dict(label=label, size=size, cx=cx, cy=cy, angle=angle, fg=fg, bg1=bg1, bg2=bg2, wave=wave,
                pattern=pattern, pf=pf, pth=pth, pamp=pamp, sth=sth, samp=samp)


def label_of(seed, i):
    return _params(seed, i)["label"]   # the label is the first draw: the same in every spread


def _inside(label, u, v):
    """Membership of unit-size shape `label` at local coordinates (u, v) (radius ~1). Boolean array."""
    r2 = u * u + v * v
    if label == 0:    # disc
        return r2 < 1.0
    if label == 1:    # square (half-side 0.82)
        return np.maximum(np.abs(u), np.abs(v)) < 0.82
    if label == 2:    # equilateral triangle, circumradius 1.15
        s = 1.15
        return (v > -0.5 * s) & (v < s - math.sqrt(3.0) * np.abs(u))
    if label == 3:    # cross / plus
        w = 0.32
        return ((np.abs(u) < w) & (np.abs(v) < 1.0)) | ((np.abs(v) < w) & (np.abs(u) < 1.0))
    if label == 4:    # ring
        return (r2 < 1.0) & (r2 > 0.52 ** 2)
    if label == 5:    # five-pointed star, outer radius 1.1, inner 0.45
        R, ri = 1.1, 0.45
        r = np.sqrt(r2)
        th = np.mod(np.arctan2(v, u), 2 * math.pi / 5)
        phi = np.minimum(th, 2 * math.pi / 5 - th)            # 0 at an outer point, pi/5 at an inner one
        px, py = r * np.cos(phi), r * np.sin(phi)
        ax, ay = R, 0.0
        bx, by = ri * math.cos(math.pi / 5), ri * math.sin(math.pi / 5)
        cross_p = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
        cross_o = (bx - ax) * (0 - ay) - (by - ay) * (0 - ax)
        return cross_p * cross_o > 0
    if label == 6:    # three parallel bars
        w = 0.17
        inb = (np.abs(v) < w) | (np.abs(v - 0.62) < w) | (np.abs(v + 0.62) < w)
        return inb & (np.abs(u) < 0.9)
    if label == 7:    # crescent
        return (r2 < 1.0) & ((u - 0.5) ** 2 + v * v > 0.82 ** 2)
    raise ValueError(label)


def render(p):
    """One image from its parameters: float32 [3, 32, 32] in [0, 1] (before quantisation)."""
    # shape mask, supersampled
    X, Y = np.meshgrid(_SUB, _SUB)                  # X = column coordinate, Y = row coordinate
    dx, dy = (X - p["cx"]) / p["size"], (Y - p["cy"]) / p["size"]
    ca, sa = math.cos(p["angle"]), math.sin(p["angle"])
    u, v = ca * dx + sa * dy, -sa * dx + ca * dy
    m = _inside(p["label"], u, v).astype(np.float32)
    mask = m.reshape(SIZE, SS, SIZE, SS).mean(axis=(1, 3))              # [32, 32] coverage
    # background
    Xp, Yp = np.meshgrid(_PIX, _PIX)
    fx, fy, ph = p["wave"]
    field = 0.5 + 0.5 * np.sin(fx * Xp + fy * Yp + ph).astype(np.float32)      # [0, 1]
    bg = p["bg1"][:, None, None] * (1 - field) + p["bg2"][:, None, None] * field
    c, s = math.cos(p["pth"]), math.sin(p["pth"])
    if p["pattern"] == 0:
        pat = np.sin(p["pf"] * (c * Xp + s * Yp))
    else:
        pat = np.sin(p["pf"] * (c * Xp + s * Yp)) * np.sin(p["pf"] * (-s * Xp + c * Yp))
    bg = bg + (p["pamp"] * pat)[None]
    # shape colour with a linear shading gradient across it
    g = (math.cos(p["sth"]) * (Xp - p["cx"]) + math.sin(p["sth"]) * (Yp - p["cy"])) / p["size"]
    fg = p["fg"][:, None, None] + (p["samp"] * 0.5 * g)[None]
    img = bg * (1 - mask)[None] + fg * mask[None]
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def generate(seed, indices, spread="narrow"):
    """Images [N, 3, 32, 32] float32 in [-1, 1] (8-bit quantised) and labels [N] int64."""
    indices = list(indices)
    imgs = np.empty((len(indices), 3, SIZE, SIZE), np.float32)
    labels = np.empty(len(indices), np.int64)
    for k, i in enumerate(indices):
        p = _params(seed, i, spread)
        imgs[k] = render(p)
        labels[k] = p["label"]
    u8 = np.round(imgs * 255.0)
    return (u8 / 127.5 - 1.0).astype(np.float32), labels


def generate_range(seed, start, n, spread="narrow"):
    return generate(seed, range(start, start + n), spread)


def generate_counts(seed, counts, start=0, spread="narrow"):
    """counts[c] images of class c (the first ones of the stream from `start`), ordered class-major."""
    want = {c: [] for c in range(NUM_CLASSES)}
    i = start
    while any(len(want[c]) < counts[c] for c in range(NUM_CLASSES)):
        c = label_of(seed, i)
        if len(want[c]) < counts[c]:
            want[c].append(i)
        i += 1
    idx = [i for c in range(NUM_CLASSES) for i in want[c]]
    return generate(seed, idx, spread)


def generate_balanced(seed, per_class, start=0, spread="narrow"):
    """per_class images of every class (scanning the stream from `start`), ordered class-major."""
    return generate_counts(seed, [per_class] * NUM_CLASSES, start, spread)


def to_uint8_hwc(images):
    """[N, 3, H, W] in [-1, 1] (numpy or torch) -> uint8 [N, H, W, 3]."""
    a = np.asarray(images, dtype=np.float32)
    return np.clip(np.round((a + 1.0) * 127.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def save_grid(images, path, ncol, scale=3, pad=2):
    """Writes a PNG grid of images [N, 3, H, W] in [-1, 1] (row-major, ncol per row), upscaled by `scale`."""
    from PIL import Image
    a = to_uint8_hwc(images)
    n, h, w, _ = a.shape
    nrow = (n + ncol - 1) // ncol
    H, W = h * scale, w * scale
    canvas = np.full((nrow * (H + pad) + pad, ncol * (W + pad) + pad, 3), 255, np.uint8)
    for k in range(n):
        r, c = divmod(k, ncol)
        tile = a[k].repeat(scale, axis=0).repeat(scale, axis=1)
        canvas[pad + r * (H + pad): pad + r * (H + pad) + H, pad + c * (W + pad): pad + c * (W + pad) + W] = tile
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(canvas).save(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("grid", help="a PNG grid: one row per class")
    g.add_argument("--out", required=True)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--per-class", type=int, default=8)
    g.add_argument("--scale", type=int, default=3)
    g.add_argument("--spread", choices=sorted(SPREADS), default="narrow")
    d = sub.add_parser("dump", help="images + labels as safetensors")
    d.add_argument("--out", required=True)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--start", type=int, default=0)
    d.add_argument("--n", type=int, default=1000)
    d.add_argument("--spread", choices=sorted(SPREADS), default="narrow")
    b = sub.add_parser("bench", help="generation speed")
    b.add_argument("--n", type=int, default=2048)
    args = ap.parse_args(argv)
    if args.cmd == "grid":
        imgs, _ = generate_balanced(args.seed, args.per_class, spread=args.spread)
        save_grid(imgs, args.out, ncol=args.per_class, scale=args.scale)
        print(f"wrote {args.out}: rows = {', '.join(CLASS_NAMES)}")
    elif args.cmd == "dump":
        import torch
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import safetensors_io
        imgs, labels = generate_range(args.seed, args.start, args.n, args.spread)
        safetensors_io.save_file({"images": torch.from_numpy(imgs), "labels": torch.from_numpy(labels)}, args.out,
                                 {"format": "blockdance.shapes/1", "seed": str(args.seed), "start": str(args.start),
                                  "class_names": ",".join(CLASS_NAMES), "value_range": "-1,1",
                                  "spread": args.spread})
        print(f"wrote {args.out}: {args.n} images")
    elif args.cmd == "bench":
        t = time.perf_counter()
        generate_range(0, 0, args.n)
        dt = time.perf_counter() - t
        print(f"{args.n} images in {dt:.2f} s ({args.n / dt:.0f} img/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
