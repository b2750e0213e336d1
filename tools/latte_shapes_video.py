#!/usr/bin/python3
"""Procedural "shapes-video" clips: 8 frames of 32x32 RGB in 6 classes whose identity lies in the motion as well as in
the shape (the data of the bundled Latte video model, models/README.md).

Classes (index order = the class_names metadata of the exported model):
    0 disc-right     a disc moving left to right
    1 disc-left      a disc moving right to left        (same shape as 0, opposite motion)
    2 square-right   a square moving left to right      (same motion as 0, other shape)
    3 square-spin    a square rotating in place, clockwise
    4 disc-grow      a disc growing in place
    5 square-bounce  a square rising and falling back (one hop)
A single frame cannot tell 0 from 1, nor (at its middle frame) 2 from 3 or 5: a classifier must use the motion.

Every clip is a function of (seed, index) only: clip i of seed s draws all its choices from
np.random.default_rng([s, i]); the static part of each frame (textured background: two colours blended by a smooth
plane wave plus fine stripes or checks, shape colour with a shading gradient, minimum contrast) is the shapes data
set's (tools/shapes_data.py `_params` / `render`), rendered per frame with the moving shape's centre, size and angle.
Anti-aliased by 4x4 supersampling; 8-bit quantised; float32 in [-1, 1], layout [N, F, 3, 32, 32].

Motion amplitudes (per clip, random): travel 12..16 px for the sliding classes (centre line jittered ±3 px), radius
5.5..6.5 px; spin 35..50 degrees in total (a square repeats every 90); growth from radius 4..5 to 10..11 px; hop height 8..11 px.

API:
    CLASS_NAMES, NUM_CLASSES, FRAMES
    clips, labels = generate(seed, indices)            # [N, F, 3, 32, 32] float32, [N] int64
    clips, labels = generate_range(seed, start, n)
    save_strip(clips, path, scale=3)                     # PNG: one row per clip, one column per frame
Command line:
    /usr/bin/python3 tools/latte_shapes_video.py strip --out clips.png [--seed 0] [--per-class 2]
"""

import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shapes_data  # noqa: E402

CLASS_NAMES = ("disc-right", "disc-left", "square-right", "square-spin", "disc-grow", "square-bounce")
NUM_CLASSES = len(CLASS_NAMES)
FRAMES = 8
SIZE = shapes_data.SIZE
DISC, SQUARE = 0, 1   # shapes_data shape indices


def _clip_params(seed, i):
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(i), 7])
    label = int(rng.integers(NUM_CLASSES))
    base = shapes_data._params(seed, i, "narrow")          # colours, background, shading (the label there is unused)
    s = np.linspace(0.0, 1.0, FRAMES)                        # motion phase per frame
    r = rng.uniform(5.5, 6.5)
    cy = SIZE / 2 + rng.uniform(-3, 3)
    cx = SIZE / 2 + rng.uniform(-3, 3)
    angle0 = rng.uniform(-math.pi / 12, math.pi / 12)
    travel = rng.uniform(12, 16)
    spin = math.radians(rng.uniform(35, 50))
    r0, r1 = rng.uniform(4, 5), rng.uniform(10, 11)
    hop = rng.uniform(8, 11)
    frames = []
    for k in range(FRAMES):
        if label in (0, 1, 2):
            direction = -1.0 if label == 1 else 1.0
            p = dict(shape=SQUARE if label == 2 else DISC, cx=SIZE / 2 + direction * travel * (s[k] - 0.5), cy=cy,
                     size=r, angle=angle0)
        elif label == 3:
            p = dict(shape=SQUARE, cx=cx, cy=cy, size=r + 1.0, angle=angle0 + spin * s[k])
        elif label == 4:
            p = dict(shape=DISC, cx=cx, cy=cy, size=r0 + (r1 - r0) * s[k], angle=angle0)
        else:
            p = dict(shape=SQUARE, cx=cx, cy=cy + 4 - hop * math.sin(math.pi * s[k]), size=r, angle=angle0)
        frames.append(p)
    return label, base, frames


def render_clip(seed, i):
    label, base, frames = _clip_params(seed, i)
    clip = np.empty((FRAMES, 3, SIZE, SIZE), np.float32)
    for k, f in enumerate(frames):
        p = dict(base)
        p.update(label=f["shape"], cx=f["cx"], cy=f["cy"], size=f["size"], angle=f["angle"])
        clip[k] = shapes_data.render(p)
    return clip, label


def generate(seed, indices):
    indices = list(indices)
    clips = np.empty((len(indices), FRAMES, 3, SIZE, SIZE), np.float32)
    labels = np.empty(len(indices), np.int64)
    for n, i in enumerate(indices):
        clips[n], labels[n] = render_clip(seed, i)
    return (np.round(clips * 255.0) / 127.5 - 1.0).astype(np.float32), labels


def generate_range(seed, start, n):
    return generate(seed, range(start, start + n))


def label_of(seed, i):
    return _clip_params(seed, i)[0]


def save_strip(clips, path, scale=3):
    """One row per clip, one column per frame (clips [N, F, 3, H, W] in [-1, 1])."""
    n, f = clips.shape[:2]
    shapes_data.save_grid(clips.reshape(n * f, 3, SIZE, SIZE), path, ncol=f, scale=scale)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("strip")
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--per-class", type=int, default=2)
    args = ap.parse_args(argv)
    want = {c: [] for c in range(NUM_CLASSES)}
    i = 0
    while any(len(v) < args.per_class for v in want.values()):
        c = label_of(args.seed, i)
        if len(want[c]) < args.per_class:
            want[c].append(i)
        i += 1
    clips, _ = generate(args.seed, [i for c in range(NUM_CLASSES) for i in want[c]])
    save_strip(clips, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
