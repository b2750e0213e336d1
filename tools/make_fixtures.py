#!/usr/bin/python3
"""Regenerates the committed parity fixtures in tests/fixtures/ (seeded and deterministic).

    /usr/bin/python3 tools/make_fixtures.py [--out tests/fixtures] [--check]

Writes small random-weight DiT checkpoints (both key layouts) and dumps in the format of
shared/design/dump-format.md plus the extensions of docs/dump-format-extensions.md. Every weight that DiT
zero-initialises (adaLN modulation, final layer) is random here, and every bias is non-zero, so every path of the
network affects the output. All numbers come from tools/dit_reference.py, run single-threaded so that the files are
byte-identical from run to run. `--check` regenerates into a temporary folder and compares byte for byte with --out
(exit 1 on any difference). tests/fixtures/README.md describes each file.
"""

import argparse
import filecmp
import math
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(__file__))
import dit_reference as ref  # noqa: E402
import safetensors_io  # noqa: E402

SEED = 20240611
FORMAT = "blockdance.dump/1"


def init_std(name, shape, hidden):
    """Std of the random normal init of one original-layout tensor: fan-in scaled for the main path (activations stay
    O(1) through every block), 0.1 for the adaLN / final modulation weights that DiT zero-initialises, 0.5 for the
    class table, 0.5/sqrt(D) for the final linear, 0.05 for every bias."""
    if name.endswith(".bias"):
        return 0.05
    if "adaLN_modulation" in name:
        return 0.1
    if name == "y_embedder.embedding_table.weight":
        return 0.5
    if name == "final_layer.linear.weight":
        return 0.5 / math.sqrt(hidden)
    fan_in = 1
    for s in shape[1:]:
        fan_in *= s
    return 1.0 / math.sqrt(fan_in)


def fixture_init(cfg, gen):
    """Original-layout state dict: pos_embed is the exact sin-cos table, every other tensor random (init_std)."""
    D = cfg.hidden_size
    state = {}
    for name, shape in ref.original_shapes(cfg):
        if name == "pos_embed":
            g = cfg.input_size // cfg.patch_size
            state[name] = ref.sincos_pos_embed_2d(D, g, g).reshape(1, g * g, D)
        else:
            state[name] = torch.randn(shape, generator=gen) * init_std(name, shape, D)
    return state


def write_weights(path, state, cfg, layout):
    meta = cfg.metadata(layout)
    if layout == "diffusers":
        state = ref.convert_original_to_diffusers(state, cfg)
    safetensors_io.save_file(state, path, meta)


def dump_meta(cfg, layout, weights, sampler, steps, cfg_scale, eta, spacing, seed):
    return {
        "format": FORMAT, "model": "dit", "layout": layout, "num_heads": str(cfg.num_heads),
        "sampler": sampler, "steps": str(steps), "cfg_scale": repr(float(cfg_scale)), "eta": repr(float(eta)),
        "cfg_channels": str(ref.NUMERICS[layout]["cfg_channels"]), "timestep_spacing": spacing,
        "seed": str(seed), "weights": weights,
    }


def forward_section(model, x, t, y):
    out, blocks = model.forward(x, t, y, return_blocks=True)
    d = {"inputs.x": x, "inputs.t": t, "inputs.y": y}
    for i, b in enumerate(blocks):
        d[f"outputs.blocks.{i}"] = b
    d["outputs.out"] = out
    return d


def make_pair(out_dir, stem, cfg, seed, inputs, samplings, diffusers_too):
    """Writes {stem}_original.safetensors (+ _diffusers) and their dumps. `samplings`: list of
    (suffix, layouts, sampler, steps, cfg_scale, eta, with_step_noise)."""
    gen = torch.Generator().manual_seed(seed)
    state = fixture_init(cfg, gen)
    x = torch.randn((inputs["batch"], cfg.in_channels, cfg.input_size, cfg.input_size), generator=gen)
    t = torch.tensor(inputs["t"], dtype=torch.float32)
    y = torch.tensor(inputs["y"], dtype=torch.int64)
    n = inputs["n"]
    noise = torch.randn((n, cfg.in_channels, cfg.input_size, cfg.input_size), generator=gen)
    sy = torch.tensor(inputs["sample_y"], dtype=torch.int64)
    layouts = ["original"] + (["diffusers"] if diffusers_too else [])
    written = []
    for layout in layouts:
        wname = f"{stem}_{layout}.safetensors"
        write_weights(os.path.join(out_dir, wname), state, cfg, layout)
        written.append(wname)
    # Reload from disk so the dumps come from exactly what a reader of the weights file sees.
    models = {lay: ref.load_dit(os.path.join(out_dir, f"{stem}_{lay}.safetensors")) for lay in layouts}
    for suffix, lays, sampler, steps, cfg_scale, eta, with_noise in samplings:
        for layout in lays:
            model = models[layout]
            spacing = ref.NUMERICS[layout]["timestep_spacing"]
            step_noise = torch.randn((steps,) + tuple(noise.shape), generator=gen) if with_noise else None
            d = forward_section(model, x, t, y)
            d["sample.noise"] = noise
            d["sample.y"] = sy
            if step_noise is not None:
                d["sample.step_noise"] = step_noise
            d["sample.out"] = ref.sample(model, noise, sy, steps, cfg_scale=cfg_scale, sampler=sampler, eta=eta,
                                         timestep_spacing=spacing, step_noise=step_noise)
            meta = dump_meta(model.cfg, layout, f"{stem}_{layout}.safetensors", sampler, steps, cfg_scale, eta,
                             spacing, seed)
            dname = f"{stem}_{layout}{suffix}.dump.safetensors"
            safetensors_io.save_file({k: v.contiguous() for k, v in d.items()}, os.path.join(out_dir, dname), meta)
            written.append(dname)
    return written


TINY = ref.DiTConfig(depth=4, hidden_size=32, num_heads=4, patch_size=2, in_channels=4, out_channels=8,
                     num_classes=10, input_size=8)
TINY_P4 = ref.DiTConfig(depth=3, hidden_size=48, num_heads=3, patch_size=4, in_channels=4, out_channels=4,
                        num_classes=7, input_size=16)


def generate(out_dir):
    torch.set_num_threads(1)   # GEMM reductions can depend on the thread count; keep the bytes reproducible
    os.makedirs(out_dir, exist_ok=True)
    files = []
    with torch.inference_mode():
        files += make_pair(
            out_dir, "dit_tiny", TINY, SEED,
            {"batch": 4, "t": [999.0, 0.0, 517.25, 42.0], "y": [3, 10, 7, 0], "n": 2, "sample_y": [1, 8]},
            [("", ["original", "diffusers"], "ddim", 10, 4.0, 0.0, False),
             (".ancestral", ["original"], "ancestral", 10, 4.0, 0.0, True),
             (".ddim_eta", ["original"], "ddim", 10, 4.0, 0.5, True)],
            diffusers_too=True)
        files += make_pair(
            out_dir, "dit_tiny_p4", TINY_P4, SEED + 1,
            {"batch": 3, "t": [0.0, 999.0, 250.5], "y": [7, 2, 5], "n": 2, "sample_y": [4, 0]},
            [("", ["original"], "ddim", 6, 1.5, 0.0, False)],
            diffusers_too=False)
        files += make_resized(out_dir)
    return files


def make_resized(out_dir):
    """The diffusers tiny model at a 12x12 latent (6x6 patch grid, native 4x4): diffusers' PatchEmbed recomputes the
    position embedding with coordinates rescaled to the native grid (base_size 4). Forward section only."""
    model = ref.load_dit(os.path.join(out_dir, "dit_tiny_diffusers.safetensors"))
    gen = torch.Generator().manual_seed(SEED + 2)
    x = torch.randn((2, TINY.in_channels, 12, 12), generator=gen)
    t = torch.tensor([999.0, 123.0])
    y = torch.tensor([4, 10], dtype=torch.int64)
    d = forward_section(model, x, t, y)
    meta = {"format": FORMAT, "model": "dit", "layout": "diffusers", "num_heads": str(TINY.num_heads),
            "seed": str(SEED + 2), "weights": "dit_tiny_diffusers.safetensors"}
    name = "dit_tiny_diffusers.size12.dump.safetensors"
    safetensors_io.save_file({k: v.contiguous() for k, v in d.items()}, os.path.join(out_dir, name), meta)
    return [name]


def check_regenerated(generate_into, out_dir):
    """Regenerates with generate_into(folder) into a temporary folder and compares each file byte for byte with
    out_dir; prints one line per file and returns 1 on any difference."""
    with tempfile.TemporaryDirectory() as tmp:
        files = generate_into(tmp)
        bad = [f for f in files if not os.path.exists(os.path.join(out_dir, f))
               or not filecmp.cmp(os.path.join(tmp, f), os.path.join(out_dir, f), shallow=False)]
    for f in files:
        print(f"{'DIFFERS' if f in bad else 'same   '} {f}")
    return 1 if bad else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description="regenerate tests/fixtures")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--out", default=os.path.join(root, "tests", "fixtures"))
    ap.add_argument("--check", action="store_true", help="regenerate into a temp folder and compare with --out")
    args = ap.parse_args(argv)
    if args.check:
        return check_regenerated(generate, args.out)
    files = generate(args.out)
    total = 0
    for f in files:
        size = os.path.getsize(os.path.join(args.out, f))
        total += size
        print(f"{size:9d}  {f}")
    print(f"{total:9d}  total bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
