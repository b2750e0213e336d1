#!/usr/bin/python3
"""The DiT forward of tools/dit_reference.py written the way a PyTorch user would for speed: torch's fused built-ins
(F.linear, F.layer_norm, F.gelu(approximate="tanh"), F.silu, torch.baddbmm/bmm attention, softmax) on the same fp32
weights, original-layout numerics. It is the fair PyTorch side of the CPU latency benchmark; `check` proves it
computes the same function as the reference (the reference is written op by op for clarity, not speed).

    /usr/bin/python3 tools/torch_fast_dit.py check --weights W [--batch 2]      (a DiT or, with temp_embed, a Latte)
"""
import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import dit_reference as ref  # noqa: E402
import safetensors_io  # noqa: E402


class FastDiT:
    def __init__(self, model: ref.DiT):
        if model.layout != "original" or model.numerics_name != "original":
            raise ValueError("the fast forward is written for original-layout checkpoints with original numerics")
        self.m = model
        self.cfg = model.cfg

    def embed(self, x):
        """x [B, C, H, W] -> the patch tokens plus the position embedding [B, T, D]."""
        m, p = self.m, self.cfg.patch_size
        return F.linear(ref.patchify(x, p), m.patch_w, m.w[m._name("xb")]) + m.pos_embed(x.shape[2] // p,
                                                                                        x.shape[3] // p)[None]

    def condition(self, t, y):
        """SiLU(t_emb + y_emb) [B, D], the input of every adaLN modulation."""
        e = self.m.emb[0]
        f = ref.timestep_embedding(t, 0)
        return F.silu(F.linear(F.silu(F.linear(f, e["w1"], e["b1"])), e["w2"], e["b2"]) + e["table"][y])

    def block(self, h, sc, i):
        """Block i on tokens h [B, T, D] with the conditioning sc of `condition`."""
        B, T, D = h.shape
        heads = self.cfg.num_heads
        dh = D // heads
        bw = self.m.blocks[i]
        mod = F.linear(sc, bw["ada_w"], bw["ada_b"]).unsqueeze(1)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=2)
        a = torch.addcmul(shift_msa, F.layer_norm(h, (D,), eps=1e-6), 1 + scale_msa)
        qkv = F.linear(a, bw["qkv_w"], bw["qkv_b"]).reshape(B, T, 3, heads, dh).permute(2, 0, 3, 1, 4)
        q, k, v = (z.reshape(B * heads, T, dh) for z in qkv)
        s = torch.baddbmm(torch.empty(B * heads, T, T), q, k.transpose(1, 2), beta=0, alpha=dh ** -0.5)
        o = torch.bmm(torch.softmax(s, dim=-1), v).reshape(B, heads, T, dh).transpose(1, 2).reshape(B, T, D)
        h = torch.addcmul(h, gate_msa, F.linear(o, bw["proj_w"], bw["proj_b"]))
        a = torch.addcmul(shift_mlp, F.layer_norm(h, (D,), eps=1e-6), 1 + scale_mlp)
        a = F.linear(F.gelu(F.linear(a, bw["fc1_w"], bw["fc1_b"]), approximate="tanh"), bw["fc2_w"], bw["fc2_b"])
        return torch.addcmul(h, gate_mlp, a)

    def final(self, h, sc, gh, gw):
        """The final layer and unpatchify: tokens [B, T, D] -> [B, C_out, H, W]."""
        D, p = self.cfg.hidden_size, self.cfg.patch_size
        ada_w, ada_b, lin_w, lin_b = self.m.final_weights()
        shift, scale = F.linear(sc, ada_w, ada_b).unsqueeze(1).chunk(2, dim=2)
        h = F.linear(torch.addcmul(shift, F.layer_norm(h, (D,), eps=1e-6), 1 + scale), lin_w, lin_b)
        return ref.unpatchify(h, p, self.cfg.out_channels, gh, gw)

    @torch.inference_mode()
    def forward(self, x, t, y):
        p = self.cfg.patch_size
        h = self.embed(x)
        sc = self.condition(t, y)
        for i in range(self.cfg.depth):
            h = self.block(h, sc, i)
        return self.final(h, sc, x.shape[2] // p, x.shape[3] // p)

class FastLatte:
    """Latte's forward (tools/latte_reference.py: per-frame patch embedding, spatial blocks on ((b f), t, d), temporal
    blocks on ((b t), f, d), temp_embed added once before block 1) on FastDiT's fused block, embedding and final layer.
    Tokens travel item-major as [B, F·T, D] (frame-major inside a clip), the stream a feature cache stores."""

    def __init__(self, path):
        state, meta = safetensors_io.load_file(path)
        if "temp_embed" not in state:
            raise ValueError(f"{path}: no temp_embed; not a Latte checkpoint")
        self.temp_embed = state.pop("temp_embed").to(torch.float32)        # [1, F, D]
        dit = ref.DiT(state, ref.infer_config(state, "original", meta))
        self.fast = FastDiT(dit)
        self.cfg = dit.cfg
        self.frames = self.temp_embed.shape[1]

    def embed(self, x):
        """x [B, F, C, H, W] -> [B, F·T, D]."""
        B, F_, C, H, W = x.shape
        h = self.fast.embed(x.reshape(B * F_, C, H, W))
        return h.reshape(B, F_ * h.shape[1], h.shape[2])

    def condition(self, t, y):
        return self.fast.condition(t, y)                                     # [B, D] per clip

    def blocks(self, h, sc, start, stop):
        """Blocks [start, stop) on h [B, F·T, D] with the per-clip conditioning sc [B, D]."""
        B, FT, D = h.shape
        F_ = self.frames
        T = FT // F_
        for i in range(start, stop):
            if i % 2 == 0:
                h = self.fast.block(h.reshape(B * F_, T, D), sc.repeat_interleave(F_, dim=0), i)
            else:
                h = h.reshape(B, F_, T, D).permute(0, 2, 1, 3).reshape(B * T, F_, D)   # '(b f) t d -> (b t) f d'
                if i == 1:
                    h = h + self.temp_embed
                h = self.fast.block(h, sc.repeat_interleave(T, dim=0), i)
                h = h.reshape(B, T, F_, D).permute(0, 2, 1, 3)                       # '(b t) f d -> (b f) t d'
            h = h.reshape(B, FT, D)
        return h

    def final(self, h, sc, gh, gw):
        """[B, F·T, D] -> [B, F, C', H, W]."""
        B, FT, D = h.shape
        F_ = self.frames
        out = self.fast.final(h.reshape(B * F_, FT // F_, D), sc.repeat_interleave(F_, dim=0), gh, gw)
        return out.reshape(B, F_, *out.shape[1:])

    @torch.inference_mode()
    def forward(self, x, t, y):
        p = self.cfg.patch_size
        sc = self.condition(t, y)
        h = self.blocks(self.embed(x), sc, 0, self.cfg.depth)
        return self.final(h, sc, x.shape[3] // p, x.shape[4] // p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["check"])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--batch", type=int, default=2)
    args = ap.parse_args()
    if "temp_embed" in safetensors_io.load_file(args.weights)[0]:
        return check_latte(args)
    model = ref.load_dit(args.weights, allow_pos_embed_recompute=True)
    fast = FastDiT(model)
    size = model.cfg.input_size or 32
    return compare(model, fast, (model.cfg.in_channels, size, size), model.cfg.num_classes, args.batch, "DiT")


def check_latte(args):
    import latte_reference
    model = latte_reference.load_latte(args.weights)
    c = model.cfg
    return compare(model, FastLatte(args.weights), (c.num_frames, c.in_channels, c.input_size, c.input_size),
                   c.num_classes, args.batch, "Latte")


def compare(model, fast, item_shape, classes, batch, name):
    """The reference and the fast forward on the same seeded inputs (timesteps 999, 3, 500…; every class and the null
    class); exit code 1 beyond 1e-4 relative."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn((batch, *item_shape), generator=g)
    t = torch.tensor([999.0, 3.0][:batch] + [500.0] * max(0, batch - 2))
    y = torch.arange(batch) % (classes + 1)
    with torch.inference_mode():
        a = model.forward(x, t, y)
        b = fast.forward(x, t, y)
    rel = ((a - b).abs().max() / a.abs().max()).item()
    print(f"{name}: max relative difference fast vs reference: {rel:.3e}")
    return 0 if rel < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
