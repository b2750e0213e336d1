#!/usr/bin/python3
"""Writes tests/fixtures/ssim_reference.json: deterministic test images and scikit-image's SSIM and PSNR of them.

The C# metrics (src/Dit/Metrics/ImageMetrics.cs) are checked against these values by
tests/BlockDance.Tests/Metrics/ImageMetricsTests.cs. SSIM is Wang et al. (2004) as scikit-image computes it with

    structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                          data_range=R, channel_axis=0)

(an 11-tap Gaussian, K1 = 0.01, K2 = 0.03, reflected borders, the 5-pixel border cropped from the SSIM map), and PSNR
is peak_signal_noise_ratio(a, b, data_range=R). Images are [C, H, W] float32 (stored exactly, as base64 of the
little-endian bytes); the metrics are computed on their float64 copies so that scikit-image works in float64, as the
C# code does. `rel_l2` is numpy's ||a - b||_2 / ||b||_2.

Usage (Debian's interpreter, which has numpy and scikit-image):
    /usr/bin/python3 tools/ssim_reference.py            # rewrite the fixture
    /usr/bin/python3 tools/ssim_reference.py --check    # exit 1 if the fixture differs from what would be written
"""

import argparse
import base64
import json
import os
import sys

import numpy as np
import skimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

FORMAT = "blockdance.ssim_reference/1"
SEED = 20240607
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "ssim_reference.json")


def pattern(channels, height, width, phase):
    """A smooth gradient plus a sinusoidal pattern and a faint checkerboard, per channel, in [-1, 1]."""
    y, x = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    out = np.empty((channels, height, width))
    for c in range(channels):
        gradient = (x / (width - 1) * 2 - 1) * (0.6 if c % 2 == 0 else -0.5) + (y / (height - 1) - 0.5) * 0.4
        waves = 0.3 * np.sin(2 * np.pi * (x * (c + 1) / 16.0 + y / 11.0) + phase + c)
        checker = 0.05 * (((x // 2 + y // 2) % 2) * 2 - 1)
        out[c] = gradient + waves + checker
    return np.clip(out, -1, 1).astype(np.float32)


def shifted(image, dy, dx):
    """The image moved down by dy and right by dx, the uncovered border filled by repeating the edge."""
    c, h, w = image.shape
    padded = np.pad(image, ((0, 0), (dy, 0), (dx, 0)), mode="edge")
    return np.ascontiguousarray(padded[:, :h, :w])


def noisy(image, rng, std, low, high):
    return np.clip(image + rng.normal(0.0, std, image.shape), low, high).astype(np.float32)


def encode(image):
    assert image.dtype == np.float32 and image.flags["C_CONTIGUOUS"]
    return {"shape": list(image.shape), "data": base64.b64encode(image.astype("<f4").tobytes()).decode("ascii")}


def build():
    rng = np.random.default_rng(SEED)
    images = {}
    images["rgb32"] = pattern(3, 32, 32, 0.0)
    images["rgb32.shift1"] = shifted(images["rgb32"], 1, 1)
    images["rgb32.noise"] = noisy(images["rgb32"], rng, 0.1, -1, 1)
    images["gray17x23"] = pattern(1, 17, 23, 0.7)
    images["gray17x23.shift2"] = shifted(images["gray17x23"], 0, 2)
    images["gray17x23.noise"] = noisy(images["gray17x23"], rng, 0.2, -1, 1)
    # The smallest size the 11-tap window allows: the cropped SSIM map is a single pixel per channel.
    images["min11"] = rng.uniform(-1, 1, (2, 11, 11)).astype(np.float32)
    images["min11.noise"] = noisy(images["min11"], rng, 0.3, -1, 1)
    # Another data range: 8-bit-like values.
    images["u8like"] = ((pattern(3, 16, 20, 1.3) + 1) * 127.5).astype(np.float32)
    images["u8like.noise"] = noisy(images["u8like"], rng, 12.0, 0, 255)
    # Flat images: zero variance everywhere, so SSIM is the luminance term alone.
    images["flat"] = np.full((1, 12, 13), 0.25, dtype=np.float32)
    images["flat.other"] = np.full((1, 12, 13), -0.5, dtype=np.float32)

    pairs = [
        ("rgb32", "rgb32.shift1", 2.0),
        ("rgb32", "rgb32.noise", 2.0),
        ("rgb32.shift1", "rgb32.noise", 2.0),
        ("gray17x23", "gray17x23.shift2", 2.0),
        ("gray17x23", "gray17x23.noise", 2.0),
        ("min11", "min11.noise", 2.0),
        ("u8like", "u8like.noise", 255.0),
        ("flat", "flat.other", 2.0),
    ]
    cases = []
    for a_name, b_name, data_range in pairs:
        a = images[a_name].astype(np.float64)
        b = images[b_name].astype(np.float64)
        ssim = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=data_range, channel_axis=0)
        psnr = peak_signal_noise_ratio(a, b, data_range=data_range)
        rel_l2 = np.linalg.norm((a - b).ravel()) / np.linalg.norm(b.ravel())
        cases.append({"a": a_name, "b": b_name, "data_range": data_range,
                      "ssim": float(ssim), "psnr": float(psnr), "rel_l2": float(rel_l2)})
    return {
        "format": FORMAT,
        "generator": "tools/ssim_reference.py",
        "seed": SEED,
        "versions": {"numpy": np.__version__, "skimage": skimage.__version__},
        "settings": {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False,
                     "K1": 0.01, "K2": 0.03, "win_size": 11, "channel_axis": 0, "dtype": "float64"},
        "images": {name: encode(img) for name, img in images.items()},
        "cases": cases,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the existing fixture instead of writing it")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args()
    text = json.dumps(build(), indent=1) + "\n"
    if args.check:
        with open(args.out, encoding="utf-8") as f:
            same = f.read() == text
        print(f"{args.out}: {'up to date' if same else 'DIFFERS from what tools/ssim_reference.py writes'}")
        return 0 if same else 1
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, args.out)
    print(f"wrote {os.path.normpath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
