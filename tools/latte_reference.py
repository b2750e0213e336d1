#!/usr/bin/python3
"""Plain-PyTorch reference of Latte inference (class-conditional, the UCF101 variant), written from the specification
in shared/design/adaptive-caching-and-video.md §2 (read from Vchitect/Latte models/latte.py at b27c24a), and the
generator of the Latte parity fixtures.

The DiT pieces (patch embedding, timestep and label embedders, adaLN-Zero blocks, final layer, the original DiT
diffusion) are the explicit-math functions of tools/dit_reference.py. What is Latte's is written here:
  * input x [B, F, C, H, W] is embedded per frame: 'b f c h w -> (b f) c h w', patch embed + pos_embed (2-D sin-cos);
  * conditioning c = t_emb + y_emb per clip [B, D], repeated 'n d -> (n c) d' per frame (F rows, spatial blocks and
    the final layer) and per patch position (T rows, temporal blocks);
  * blocks alternate: for i in 0, 2, 4, ...: blocks[i] is spatial on ((b f), t, d); then '(b f) t d -> (b t) f d';
    only when i == 0: + temp_embed [1, F, D] (1-D sin-cos over frame index, [sin | cos]); blocks[i+1] is temporal on
    ((b t), f, d); then '(b t) f d -> (b f) t d' back;
  * final layer on the per-frame conditioning, unpatchify per frame, '(b f) c h w -> b f c h w';
  * forward_with_cfg: the first half of the batch is duplicated; guidance on model_out[:, :, :4] (Latte's literal 4),
    the remaining channels pass through.
Rearrangements are done here with reshape/permute (torch), not with the implementation's op.

Command line:
  /usr/bin/python3 tools/latte_reference.py fixtures [--out tests/fixtures] [--check]
      writes the Latte fixtures (weights + dumps; docs/dump-format-extensions.md), seeded and byte-reproducible;
      --check regenerates into a temporary folder and compares byte for byte.
  /usr/bin/python3 tools/latte_reference.py verify --weights W --dump D
      recomputes every tensor of a dump from the weights and prints the errors (exit 1 beyond 1e-5 / 1e-4).
"""

import argparse
import math
import os
import sys
from dataclasses import dataclass

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dit_reference as dit  # noqa: E402
import safetensors_io  # noqa: E402

FORMAT = "blockdance.dump/1"
GUIDED_CHANNELS = 4   # forward_with_cfg: eps, rest = model_out[:, :, :4, ...], model_out[:, :, 4:, ...]
NORM_EPS = 1e-6       # every LayerNorm of Latte (no affine)


@dataclass
class LatteConfig:
    depth: int
    hidden_size: int
    num_heads: int
    patch_size: int
    in_channels: int
    learn_sigma: bool
    num_classes: int
    input_size: int
    num_frames: int

    @property
    def out_channels(self):
        return 2 * self.in_channels if self.learn_sigma else self.in_channels

    def dit_config(self):
        return dit.DiTConfig(depth=self.depth, hidden_size=self.hidden_size, num_heads=self.num_heads,
                             patch_size=self.patch_size, in_channels=self.in_channels,
                             out_channels=self.out_channels, num_classes=self.num_classes, input_size=self.input_size)

    def shapes(self):
        """Ordered (name, shape) of the state dict: the DiT keys plus temp_embed."""
        out = dit.original_shapes(self.dit_config())
        return out[:1] + [("temp_embed", (1, self.num_frames, self.hidden_size))] + out[1:]

    def metadata(self):
        return {"format": "blockdance.weights/1", "layout": "original", "model": "latte",
                "depth": str(self.depth), "hidden_size": str(self.hidden_size), "num_heads": str(self.num_heads),
                "patch_size": str(self.patch_size), "input_size": str(self.input_size),
                "in_channels": str(self.in_channels), "num_classes": str(self.num_classes),
                "learn_sigma": "true" if self.learn_sigma else "false", "num_frames": str(self.num_frames)}


def temp_embed_table(dim, frames):
    """get_1d_sincos_temp_embed(dim, frames): positions 0..F-1, [sin(f·ω) | cos(f·ω)], float64 math, float32."""
    return torch.from_numpy(dit.sincos_1d(dim, list(range(frames))).astype("float32"))


class Latte:
    def __init__(self, state, cfg):
        self.cfg = cfg
        names = [n for n, _ in cfg.shapes()]
        missing = [n for n in names if n not in state]
        extra = [k for k in state if k not in names]
        if missing or extra:
            raise ValueError(f"Latte checkpoint: missing {missing[:5]}, unexpected {extra[:5]}")
        for n, s in cfg.shapes():
            if tuple(state[n].shape) != tuple(s):
                raise ValueError(f"{n}: shape {list(state[n].shape)}, expected {list(s)}")
        self.w = {k: v.detach().to(torch.float32).contiguous() for k, v in state.items()}

    def block(self, x, c, i):
        """DiT/Latte TransformerBlock i with adaLN-Zero on rows x [N, L, D], c [N, D]."""
        g = lambda n: self.w[f"blocks.{i}.{n}"]  # noqa: E731
        mod = dit.linear(dit.silu(c), g("adaLN_modulation.1.weight"), g("adaLN_modulation.1.bias"))
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=1)
        h = dit.modulate(dit.layer_norm(x, NORM_EPS), shift_msa, scale_msa)
        x = x + gate_msa[:, None, :] * dit.attention(h, g("attn.qkv.weight"), g("attn.qkv.bias"),
                                                     g("attn.proj.weight"), g("attn.proj.bias"), self.cfg.num_heads)
        h = dit.modulate(dit.layer_norm(x, NORM_EPS), shift_mlp, scale_mlp)
        h = dit.linear(dit.gelu_tanh(dit.linear(h, g("mlp.fc1.weight"), g("mlp.fc1.bias"))),
                       g("mlp.fc2.weight"), g("mlp.fc2.bias"))
        return x + gate_mlp[:, None, :] * h

    def forward(self, x, t, y, return_blocks=False, boundary=None, feature=None):
        """x [B, F, C, H, W], t [B], y [B] -> out [B, F, C', H, W] (and every block's output as [B, F, T, D]).
        With `boundary` (BlockDance's Cache/Reuse, docs/caching.md): without `feature`, the stream entering block
        `boundary` ([B·F, T, D], frame-major) is returned too (a Cache step); with `feature` the embedding and blocks
        0 … boundary−1 are skipped and block `boundary` starts from it (a Reuse step)."""
        cfg, w = self.cfg, self.w
        x = x.to(torch.float32)
        B, F, C, H, W = x.shape
        if F != cfg.num_frames or C != cfg.in_channels:
            raise ValueError(f"input {list(x.shape)}: the model takes {cfg.num_frames} frames of {cfg.in_channels} channels")
        p, D = cfg.patch_size, cfg.hidden_size
        gh, gw = H // p, W // p
        T = gh * gw
        frames = x.reshape(B * F, C, H, W)                                              # 'b f c h w -> (b f) c h w'
        pos = w["pos_embed"].reshape(T, D) if gh * p == cfg.input_size and gh == gw else dit.sincos_pos_embed_2d(D, gh, gw)
        h = dit.linear(dit.patchify(frames, p), w["x_embedder.proj.weight"].reshape(D, -1), w["x_embedder.proj.bias"])
        h = h + pos[None]                                                               # ((b f), t, d)
        t = torch.as_tensor(t, dtype=torch.float32).reshape(-1)
        y = torch.as_tensor(y, dtype=torch.int64).reshape(-1)
        f = dit.timestep_embedding(t, 0)
        t_emb = dit.linear(dit.silu(dit.linear(f, w["t_embedder.mlp.0.weight"], w["t_embedder.mlp.0.bias"])),
                           w["t_embedder.mlp.2.weight"], w["t_embedder.mlp.2.bias"])
        c = t_emb + w["y_embedder.embedding_table.weight"][y]                           # [B, D]
        c_spatial = c.repeat_interleave(F, dim=0)                                       # 'n d -> (n c) d', c = F
        c_temp = c.repeat_interleave(T, dim=0)                                          # 'n d -> (n c) d', c = T
        blocks, stored, start = [], None, 0
        if boundary is not None and feature is not None:
            h, start = feature, boundary
        for i in range(start, cfg.depth):   # the official pairs (spatial i, temporal i + 1), one block at a time
            if i == boundary and feature is None:
                stored = h
            if i % 2 == 0:
                h = self.block(h, c_spatial, i)
            else:
                h = h.reshape(B, F, T, D).permute(0, 2, 1, 3).reshape(B * T, F, D)       # '(b f) t d -> (b t) f d'
                if i == 1:
                    h = h + w["temp_embed"]
                h = self.block(h, c_temp, i)
                h = h.reshape(B, T, F, D).permute(0, 2, 1, 3).reshape(B * F, T, D)       # '(b t) f d -> (b f) t d'
            blocks.append(h.reshape(B, F, T, D))
        shift, scale = dit.linear(dit.silu(c_spatial), w["final_layer.adaLN_modulation.1.weight"],
                                  w["final_layer.adaLN_modulation.1.bias"]).chunk(2, dim=1)
        h = dit.linear(dit.modulate(dit.layer_norm(h, NORM_EPS), shift, scale),
                       w["final_layer.linear.weight"], w["final_layer.linear.bias"])
        out = dit.unpatchify(h, p, cfg.out_channels, gh, gw).reshape(B, F, cfg.out_channels, H, W)
        if boundary is not None and feature is None:
            return out, stored
        return (out, blocks) if return_blocks else out

    def forward_with_cfg(self, x, t, y, cfg_scale):
        half = x[: len(x) // 2]
        out = self.forward(torch.cat([half, half], dim=0), t, y)
        eps, rest = out[:, :, :GUIDED_CHANNELS], out[:, :, GUIDED_CHANNELS:]
        cond_eps, uncond_eps = torch.split(eps, len(eps) // 2, dim=0)
        half_eps = uncond_eps + cfg_scale * (cond_eps - uncond_eps)
        return torch.cat([torch.cat([half_eps, half_eps], dim=0), rest], dim=2)


def load_latte(path):
    state, meta = safetensors_io.load_file(path)
    if "temp_embed" not in state:
        raise ValueError(f"{path}: no temp_embed; not a Latte checkpoint")
    D = state["x_embedder.proj.weight"].shape[0]
    p = state["x_embedder.proj.weight"].shape[2]
    C = state["x_embedder.proj.weight"].shape[1]
    depth = 0
    while f"blocks.{depth}.attn.qkv.weight" in state:
        depth += 1
    out = state["final_layer.linear.weight"].shape[0] // (p * p)
    side = int(round(math.sqrt(state["pos_embed"].shape[1])))
    cfg = LatteConfig(depth=depth, hidden_size=D, num_heads=int(meta["num_heads"]), patch_size=p, in_channels=C,
                      learn_sigma=out == 2 * C, num_classes=state["y_embedder.embedding_table.weight"].shape[0] - 1,
                      input_size=side * p, num_frames=state["temp_embed"].shape[1])
    return Latte(state, cfg)


def sample(model, noise, y, steps, cfg_scale, sampler="ddim", eta=0.0, step_noise=None):
    """The original DiT diffusion (Latte's create_diffusion: linear betas, respaced) on clips [n, F, C, H, W]. The step
    math is per element and per channel, so it runs on the frames viewed as [n·F, C, H, W]. step_noise [S, n, F, C, H, W]."""
    n, F, C, H, W = noise.shape
    use_cfg = cfg_scale is not None
    diff = dit.SpacedDiffusion(steps, learn_sigma=model.cfg.learn_sigma)
    y = torch.as_tensor(y, dtype=torch.int64)
    null = torch.full((n,), model.cfg.num_classes, dtype=torch.int64)
    x = torch.cat([noise, noise]) if use_cfg else noise.clone()
    y_full = torch.cat([y, null]) if use_cfg else y
    for s, k in enumerate(reversed(range(diff.num_steps))):
        tt = torch.full((x.shape[0],), float(diff.timestep_map[k]))
        out = model.forward_with_cfg(x, tt, y_full, cfg_scale) if use_cfg else model.forward(x, tt, y_full)
        z = step_noise[s] if step_noise is not None else torch.zeros_like(noise)
        z = torch.cat([z, z]) if use_cfg else z
        rows = x.shape[0] * F
        xf, of, zf = x.reshape(rows, C, H, W), out.reshape(rows, -1, H, W), z.reshape(rows, C, H, W)
        if sampler == "ddim":
            xf = diff.ddim_step(of, xf, k, zf, eta)
        elif sampler == "ancestral":
            xf = diff.p_sample_step(of, xf, k, zf)
        else:
            raise ValueError(sampler)
        x = xf.reshape(x.shape)
    return x[:n]


# ----------------------------------------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------------------------------------

SEED = 20250413

# Two differently shaped models: depth, heads, frames, channels, patch and learned sigma all differ.
SMALL = LatteConfig(depth=2, hidden_size=16, num_heads=2, patch_size=2, in_channels=3, learn_sigma=True,
                    num_classes=5, input_size=8, num_frames=3)
DEEP = LatteConfig(depth=4, hidden_size=16, num_heads=4, patch_size=1, in_channels=4, learn_sigma=True,
                   num_classes=6, input_size=4, num_frames=5)


def fixture_state(cfg, gen):
    """pos_embed and temp_embed exact sin-cos tables, every other tensor random (dit's fixture scales; nothing zero)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import make_fixtures  # noqa: E402  (init_std: the DiT fixtures' scales)
    D, g = cfg.hidden_size, cfg.input_size // cfg.patch_size
    state = {}
    for name, shape in cfg.shapes():
        if name == "pos_embed":
            state[name] = dit.sincos_pos_embed_2d(D, g, g).reshape(1, g * g, D)
        elif name == "temp_embed":
            state[name] = temp_embed_table(D, cfg.num_frames).reshape(1, cfg.num_frames, D)
        else:
            state[name] = torch.randn(shape, generator=gen) * make_fixtures.init_std(name, shape, D)
    return state


def make_model(out_dir, stem, cfg, seed, batch, t, y, n, sample_y, sampler, steps, cfg_scale, eta):
    gen = torch.Generator().manual_seed(seed)
    state = fixture_state(cfg, gen)
    wname = f"{stem}.safetensors"
    safetensors_io.save_file(state, os.path.join(out_dir, wname), cfg.metadata())
    model = load_latte(os.path.join(out_dir, wname))
    s = cfg.input_size
    x = torch.randn((batch, cfg.num_frames, cfg.in_channels, s, s), generator=gen)
    t = torch.tensor(t, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.int64)
    out, blocks = model.forward(x, t, y, return_blocks=True)
    d = {"inputs.x": x, "inputs.t": t, "inputs.y": y, "outputs.out": out}
    for i, b in enumerate(blocks):
        d[f"outputs.blocks.{i}"] = b
    noise = torch.randn((n, cfg.num_frames, cfg.in_channels, s, s), generator=gen)
    step_noise = torch.randn((steps,) + tuple(noise.shape), generator=gen) if sampler == "ancestral" or eta > 0 else None
    sy = torch.tensor(sample_y, dtype=torch.int64)
    d["sample.noise"] = noise
    d["sample.y"] = sy
    if step_noise is not None:
        d["sample.step_noise"] = step_noise
    d["sample.out"] = sample(model, noise, sy, steps, cfg_scale, sampler=sampler, eta=eta, step_noise=step_noise)
    meta = {"format": FORMAT, "model": "latte", "layout": "original", "num_heads": str(cfg.num_heads),
            "num_frames": str(cfg.num_frames), "sampler": sampler, "steps": str(steps),
            "cfg_scale": repr(float(cfg_scale)), "eta": repr(float(eta)), "cfg_channels": str(GUIDED_CHANNELS),
            "timestep_spacing": "fractional", "seed": str(seed), "weights": wname}
    dname = f"{stem}.dump.safetensors"
    safetensors_io.save_file({k: v.contiguous() for k, v in d.items()}, os.path.join(out_dir, dname), meta)
    return [wname, dname]


def generate(out_dir):
    torch.set_num_threads(1)
    os.makedirs(out_dir, exist_ok=True)
    files = []
    with torch.inference_mode():
        files += make_model(out_dir, "latte_small", SMALL, SEED, batch=2, t=[999.0, 321.5], y=[4, 5], n=2,
                            sample_y=[1, 3], sampler="ancestral", steps=6, cfg_scale=3.0, eta=0.0)
        files += make_model(out_dir, "latte_deep", DEEP, SEED + 1, batch=2, t=[0.0, 640.0], y=[6, 2], n=1,
                            sample_y=[5], sampler="ddim", steps=5, cfg_scale=2.5, eta=0.0)
    return files


def cmd_fixtures(args):
    if args.check:
        import make_fixtures  # noqa: E402
        return make_fixtures.check_regenerated(generate, args.out)
    for f in generate(args.out):
        print(f"{os.path.getsize(os.path.join(args.out, f)):9d}  {f}")
    return 0


def cmd_verify(args):
    model = load_latte(args.weights)
    d, meta = safetensors_io.load_file(args.dump)
    ok = True
    with torch.inference_mode():
        if "inputs.x" in d:
            out, blocks = model.forward(d["inputs.x"], d["inputs.t"], d["inputs.y"], return_blocks=True)
            for i, b in enumerate(blocks):
                if f"outputs.blocks.{i}" in d:
                    ok &= dit.compare(f"outputs.blocks.{i}", b, d[f"outputs.blocks.{i}"], 1e-5)
            ok &= dit.compare("outputs.out", out, d["outputs.out"], 1e-5)
        if "sample.noise" in d:
            got = sample(model, d["sample.noise"], d["sample.y"], int(meta["steps"]), float(meta["cfg_scale"]),
                         sampler=meta.get("sampler", "ddim"), eta=float(meta.get("eta", "0")),
                         step_noise=d.get("sample.step_noise"))
            ok &= dit.compare("sample.out", got, d["sample.out"], 1e-4)
    return 0 if ok else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    f = sub.add_parser("fixtures")
    f.add_argument("--out", default=os.path.join(root, "tests", "fixtures"))
    f.add_argument("--check", action="store_true")
    v = sub.add_parser("verify")
    v.add_argument("--weights", required=True)
    v.add_argument("--dump", required=True)
    args = ap.parse_args(argv)
    return cmd_fixtures(args) if args.cmd == "fixtures" else cmd_verify(args)


if __name__ == "__main__":
    sys.exit(main())
