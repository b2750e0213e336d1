#!/usr/bin/python3
"""Plain-PyTorch reference of DiT inference, written from shared/design/model-spec.md (§1 original DiT, §2 diffusers DiT).

It is the "PyTorch side" of the project's parity tests: it loads a checkpoint in either key layout, runs the forward
pass with either implementation's numerics, and runs the samplers exactly as the two reference code bases do, with
every source of randomness injectable so that another implementation can be compared number for number.

Everything is explicit math on fp32 CPU tensors (no nn.Modules, no fused kernels):
  * timestep embedding  [cos | sin], freqs exp(-ln(1e4)·i/(128 - shift)); shift 0 = original DiT, 1 = diffusers DiT
  * 2-D sin-cos pos-embed in float64: [sin(col·ω) | cos(col·ω) | sin(row·ω) | cos(row·ω)], stored as float32
  * patch embed as a GEMM over patch vectors ordered (c, i, j); tokens row-major
  * attention with the timm head layout (qkv features: which·D + head·Dh + d), scale Dh^-0.5, explicit softmax
  * adaLN-Zero: mod = Linear(SiLU(c)) chunked shift, scale, gate (×2); final layer chunk shift, scale
  * LayerNorm without affine, biased variance; eps 1e-6 (diffusers: 1e-5 for the LayerNorm before the MLP)
  * tanh-GELU, SiLU = x·sigmoid(x)
  * unpatchify nhwpqc -> nchpwq

Numerics per layout (see NUMERICS): the key layout says how the weights are named, the numerics say how they are
used. By default a checkpoint's numerics follow its layout; `numerics=` overrides (used by the self-checks and by
`verify`, which takes the numerics from the dump).

Samplers (model-spec §1.13 and §2.3):
  * original DiT diffusion (`timestep_spacing="fractional"`): linear betas in float64, `space_timesteps(1000, "N")`,
    respaced betas, float64 tables gathered then cast to float32; DDIM (`ddim_sample`, any eta) and the ancestral
    `p_sample` (LEARNED_RANGE variance, or FIXED_LARGE when the model has no learned sigma), clip_denoised=False;
  * diffusers DDIMScheduler (`timestep_spacing="leading"`): float32 betas, torch.cumprod, set_alpha_to_one, any eta.
  * classifier-free guidance on a [cond..., uncond...] batch: the first half of x is duplicated before every forward,
    guidance is applied to the first `cfg_channels` output channels, the remaining channels are taken as they come
    out of the model (for the cond half: the raw conditional values); only the cond half is returned.
  * step noise: `step_noise[k]` ([n, C, H, W]) is the noise drawn at sampling step k (k = 0 is the noisiest, the first
    model call); it is used for the cond half (the uncond half is discarded by the next step's duplication). The final
    step's noise is multiplied by zero (original: the `t != 0` mask; diffusers: σ = 0 when ᾱ_prev = 1).

Command line:
  /usr/bin/python3 tools/dit_reference.py verify --weights W.safetensors --dump D.safetensors [--threads T]
      [--num-heads H] [--atol-forward 1e-5 ...]   recomputes every tensor of a dump and prints max abs / rel errors.
  /usr/bin/python3 tools/dit_reference.py info --weights W.safetensors      prints the inferred configuration.
"""

import argparse
import math
import os
import re
import sys
from dataclasses import dataclass

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

LAYOUTS = ("original", "diffusers")

# How each implementation computes (model-spec §1 and §2.2/§2.3).
NUMERICS = {
    "original": {"freq_shift": 0, "norm1_eps": 1e-6, "mlp_norm_eps": 1e-6, "final_norm_eps": 1e-6,
                 "cfg_channels": 3, "timestep_spacing": "fractional"},
    "diffusers": {"freq_shift": 1, "norm1_eps": 1e-6, "mlp_norm_eps": 1e-5, "final_norm_eps": 1e-6,
                  "cfg_channels": 4, "timestep_spacing": "leading"},
}

FREQ_DIM = 256          # frequency_embedding_size of the timestep embedder
MAX_PERIOD = 10000.0
NUM_TRAIN_TIMESTEPS = 1000


@dataclass
class DiTConfig:
    depth: int
    hidden_size: int
    num_heads: int
    patch_size: int
    in_channels: int
    out_channels: int
    num_classes: int
    input_size: int = None      # latent side the checkpoint was built for (None = unknown)
    mlp_hidden: int = None

    @property
    def learn_sigma(self):
        return self.out_channels == 2 * self.in_channels

    @property
    def head_dim(self):
        return self.hidden_size // self.num_heads

    def metadata(self, layout):
        """The weights-file metadata this project writes (docs/dump-format-extensions.md)."""
        return {
            "format": "blockdance.weights/1", "layout": layout, "model": "dit",
            "depth": str(self.depth), "hidden_size": str(self.hidden_size), "num_heads": str(self.num_heads),
            "patch_size": str(self.patch_size), "input_size": str(self.input_size),
            "in_channels": str(self.in_channels), "num_classes": str(self.num_classes),
            "learn_sigma": "true" if self.learn_sigma else "false",
        }


# ----------------------------------------------------------------------------------------------------------------
# Key layouts (model-spec §1.2 and §2.1)
# ----------------------------------------------------------------------------------------------------------------

def original_shapes(cfg, include_pos_embed=True):
    """Ordered (name, shape) of an original-layout state dict."""
    D, p, C = cfg.hidden_size, cfg.patch_size, cfg.in_channels
    M = cfg.mlp_hidden or 4 * D
    out = []
    if include_pos_embed:
        g = cfg.input_size // p
        out.append(("pos_embed", (1, g * g, D)))
    out += [("x_embedder.proj.weight", (D, C, p, p)), ("x_embedder.proj.bias", (D,)),
            ("t_embedder.mlp.0.weight", (D, FREQ_DIM)), ("t_embedder.mlp.0.bias", (D,)),
            ("t_embedder.mlp.2.weight", (D, D)), ("t_embedder.mlp.2.bias", (D,)),
            ("y_embedder.embedding_table.weight", (cfg.num_classes + 1, D))]
    for i in range(cfg.depth):
        b = f"blocks.{i}."
        out += [(b + "attn.qkv.weight", (3 * D, D)), (b + "attn.qkv.bias", (3 * D,)),
                (b + "attn.proj.weight", (D, D)), (b + "attn.proj.bias", (D,)),
                (b + "mlp.fc1.weight", (M, D)), (b + "mlp.fc1.bias", (M,)),
                (b + "mlp.fc2.weight", (D, M)), (b + "mlp.fc2.bias", (D,)),
                (b + "adaLN_modulation.1.weight", (6 * D, D)), (b + "adaLN_modulation.1.bias", (6 * D,))]
    out += [("final_layer.adaLN_modulation.1.weight", (2 * D, D)), ("final_layer.adaLN_modulation.1.bias", (2 * D,)),
            ("final_layer.linear.weight", (p * p * cfg.out_channels, D)),
            ("final_layer.linear.bias", (p * p * cfg.out_channels,))]
    return out


def diffusers_plan(cfg):
    """Ordered (diffusers name, shape, original name, chunk) — chunk k of 3 (dim 0) for q/k/v, None for a copy.
    The t/y embedders are copied into every block; pos_embed is dropped (recomputed by diffusers)."""
    D = cfg.hidden_size
    shapes = dict(original_shapes(cfg, include_pos_embed=False))
    plan = [("pos_embed.proj.weight", "x_embedder.proj.weight", None),
            ("pos_embed.proj.bias", "x_embedder.proj.bias", None)]
    for i in range(cfg.depth):
        t, b = f"transformer_blocks.{i}.", f"blocks.{i}."
        emb = t + "norm1.emb."
        plan += [(emb + "timestep_embedder.linear_1.weight", "t_embedder.mlp.0.weight", None),
                 (emb + "timestep_embedder.linear_1.bias", "t_embedder.mlp.0.bias", None),
                 (emb + "timestep_embedder.linear_2.weight", "t_embedder.mlp.2.weight", None),
                 (emb + "timestep_embedder.linear_2.bias", "t_embedder.mlp.2.bias", None),
                 (emb + "class_embedder.embedding_table.weight", "y_embedder.embedding_table.weight", None),
                 (t + "norm1.linear.weight", b + "adaLN_modulation.1.weight", None),
                 (t + "norm1.linear.bias", b + "adaLN_modulation.1.bias", None)]
        for k, qkv in enumerate(("to_q", "to_k", "to_v")):
            plan += [(t + f"attn1.{qkv}.weight", b + "attn.qkv.weight", k),
                     (t + f"attn1.{qkv}.bias", b + "attn.qkv.bias", k)]
        plan += [(t + "attn1.to_out.0.weight", b + "attn.proj.weight", None),
                 (t + "attn1.to_out.0.bias", b + "attn.proj.bias", None),
                 (t + "ff.net.0.proj.weight", b + "mlp.fc1.weight", None),
                 (t + "ff.net.0.proj.bias", b + "mlp.fc1.bias", None),
                 (t + "ff.net.2.weight", b + "mlp.fc2.weight", None),
                 (t + "ff.net.2.bias", b + "mlp.fc2.bias", None)]
    plan += [("proj_out_1.weight", "final_layer.adaLN_modulation.1.weight", None),
             ("proj_out_1.bias", "final_layer.adaLN_modulation.1.bias", None),
             ("proj_out_2.weight", "final_layer.linear.weight", None),
             ("proj_out_2.bias", "final_layer.linear.bias", None)]
    out = []
    for name, src, chunk in plan:
        shape = shapes[src]
        if chunk is not None:
            shape = (shape[0] // 3,) + tuple(shape[1:])
        out.append((name, tuple(shape), src, chunk))
    return out


def convert_original_to_diffusers(state, cfg):
    """Original-layout state dict -> diffusers-layout state dict (exact mapping of model-spec §2.1)."""
    out = {}
    for name, _, src, chunk in diffusers_plan(cfg):
        t = state[src]
        out[name] = (torch.chunk(t, 3, dim=0)[chunk] if chunk is not None else t).clone()
    return out


def detect_layout(keys):
    if "x_embedder.proj.weight" in keys:
        return "original"
    if "pos_embed.proj.weight" in keys:
        return "diffusers"
    raise ValueError("not a DiT checkpoint: neither x_embedder.proj.weight (original layout) nor "
                     "pos_embed.proj.weight (diffusers layout) is present")


def infer_config(state, layout, metadata=None, num_heads=None, input_size=None):
    metadata = metadata or {}
    pre = "x_embedder." if layout == "original" else "pos_embed."
    D, C, p, p2 = state[pre + "proj.weight"].shape
    if p != p2:
        raise ValueError(f"non-square patch {p}x{p2}")
    blk = re.compile(r"^(?:blocks|transformer_blocks)\.(\d+)\.")
    depth = 1 + max((int(m.group(1)) for k in state for m in [blk.match(k)] if m), default=-1)
    if layout == "original":
        table = state["y_embedder.embedding_table.weight"]
        final = state["final_layer.linear.weight"]
        mlp_hidden = state["blocks.0.mlp.fc1.weight"].shape[0] if depth else 4 * D
    else:
        table = state["transformer_blocks.0.norm1.emb.class_embedder.embedding_table.weight"]
        final = state["proj_out_2.weight"]
        mlp_hidden = state["transformer_blocks.0.ff.net.0.proj.weight"].shape[0] if depth else 4 * D
    if final.shape[0] % (p * p):
        raise ValueError(f"final linear has {final.shape[0]} rows, not a multiple of patch² = {p * p}")
    heads = num_heads or (int(metadata["num_heads"]) if "num_heads" in metadata else None)
    if heads is None:
        raise ValueError("num_heads is not recoverable from the weights: pass num_heads (--num-heads) or store "
                         "it in the file's metadata")
    if D % heads:
        raise ValueError(f"hidden size {D} is not divisible by num_heads {heads}")
    size = input_size or (int(metadata["input_size"]) if metadata.get("input_size", "None") != "None" else None)
    if size is None and "pos_embed" in state and layout == "original":
        size = int(round(math.sqrt(state["pos_embed"].shape[1]))) * p
    return DiTConfig(depth=depth, hidden_size=D, num_heads=heads, patch_size=p, in_channels=C,
                     out_channels=final.shape[0] // (p * p), num_classes=table.shape[0] - 1,
                     input_size=size, mlp_hidden=mlp_hidden)


# ----------------------------------------------------------------------------------------------------------------
# The math
# ----------------------------------------------------------------------------------------------------------------

def linear(x, w, b):
    return x.matmul(w.t()) + b


def silu(x):
    return x * torch.sigmoid(x)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


def layer_norm(x, eps):
    """LayerNorm over the last dim, no affine, biased variance: (x − μ) / sqrt(var + eps)."""
    mu = x.mean(dim=-1, keepdim=True)
    d = x - mu
    var = (d * d).mean(dim=-1, keepdim=True)
    return d / torch.sqrt(var + eps)


def modulate(x, shift, scale):
    return x * (1.0 + scale[:, None, :]) + shift[:, None, :]


def softmax_lastdim(s):
    e = torch.exp(s - s.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)


def timestep_frequencies(half=FREQ_DIM // 2, freq_shift=0):
    """exp(−ln(max_period)·i / (half − shift)), float32. shift 0: original DiT (/128); 1: diffusers DiT (/127)."""
    return torch.exp(-math.log(MAX_PERIOD) * torch.arange(half, dtype=torch.float32) / (half - freq_shift))


def timestep_embedding(t, freq_shift=0, dim=FREQ_DIM):
    """[B] (any real dtype, original 0..999 scale, may be fractional) -> [B, dim] = [cos(t·f) | sin(t·f)]."""
    args = t.reshape(-1, 1).float() * timestep_frequencies(dim // 2, freq_shift)[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def sincos_1d(dim, pos):
    """MAE 1-D: pos (float64, any shape, flattened) -> [M, dim] = [sin(pos·ω) | cos(pos·ω)], ω_k = 1/1e4^(k/(dim/2))."""
    omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
    omega = 1.0 / 10000.0 ** omega
    out = np.einsum("m,d->md", np.asarray(pos, dtype=np.float64).reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_pos_embed_2d(dim, grid_h, grid_w, base_size=None, interpolation_scale=1.0):
    """2-D sin-cos pos-embed, float64 math, returned as float32 [grid_h·grid_w, dim].

    Token n = r·grid_w + c gets [1-D(col c) | 1-D(row r)] (the column coordinate comes first). With base_size given
    (diffusers PatchEmbed), coordinates are arange(n)/(n/base_size)/interpolation_scale computed in float32; without,
    they are the plain integers (original DiT)."""
    if dim % 4:
        raise ValueError(f"pos-embed dim {dim} must be a multiple of 4")
    if base_size is None:
        rows = np.arange(grid_h, dtype=np.float64)
        cols = np.arange(grid_w, dtype=np.float64)
    else:
        rows = np.arange(grid_h, dtype=np.float32) / (grid_h / base_size) / interpolation_scale
        cols = np.arange(grid_w, dtype=np.float32) / (grid_w / base_size) / interpolation_scale
    col_grid, row_grid = np.meshgrid(cols, rows)          # [grid_h, grid_w] each; "w goes first"
    emb = np.concatenate([sincos_1d(dim // 2, col_grid), sincos_1d(dim // 2, row_grid)], axis=1)
    return torch.from_numpy(emb.astype(np.float32))


def patchify(x, p):
    """[B, C, H, W] -> [B, T, C·p·p]; token n = row·(W/p) + col, patch vector index c·p·p + i·p + j."""
    B, C, H, W = x.shape
    if H % p or W % p:
        raise ValueError(f"input {H}x{W} is not a multiple of the patch size {p}")
    h, w = H // p, W // p
    return x.reshape(B, C, h, p, w, p).permute(0, 2, 4, 1, 3, 5).reshape(B, h * w, C * p * p)


def unpatchify(x, p, c, h, w):
    """[B, T, p·p·c] -> [B, c, h·p, w·p] via nhwpqc -> nchpwq."""
    B = x.shape[0]
    return x.reshape(B, h, w, p, p, c).permute(0, 5, 1, 3, 2, 4).reshape(B, c, h * p, w * p)


def attention(x, qkv_w, qkv_b, proj_w, proj_b, heads):
    """timm Attention: qkv -> (B, T, 3, H, Dh) -> (3, B, H, T, Dh); softmax(q·kᵀ·Dh^-0.5)·v; heads concatenated."""
    B, T, D = x.shape
    dh = D // heads
    qkv = linear(x, qkv_w, qkv_b).reshape(B, T, 3, heads, dh).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    probs = softmax_lastdim((q * dh ** -0.5).matmul(k.transpose(-2, -1)))   # (B, H, T, T)
    o = probs.matmul(v).transpose(1, 2).reshape(B, T, D)                     # (B, T, D), head-major features
    return linear(o, proj_w, proj_b)


# ----------------------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------------------

class DiT:
    """A DiT with canonical (original-named) fp32 weights. Use `load_dit` to build one from a file."""

    def __init__(self, state, cfg, layout="original", numerics=None, allow_pos_embed_recompute=False):
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}")
        self.cfg = cfg
        self.layout = layout
        self.numerics_name = numerics or layout
        if self.numerics_name not in NUMERICS:
            raise ValueError(f"unknown numerics {self.numerics_name!r}")
        self.numerics = NUMERICS[self.numerics_name]
        self.allow_pos_embed_recompute = allow_pos_embed_recompute
        self.w = {k: v.detach().to(torch.float32).contiguous() for k, v in state.items()
                  if k != "pos_embed" or layout == "original"}
        self._check_keys()
        D = cfg.hidden_size
        self.patch_w = self.w[self._name("x")].reshape(D, -1)               # [D, C·p·p]
        # Conditioning embedders: one per block in the diffusers layout (each block's AdaLayerNormZero owns a copy,
        # and the final layer uses block 0's); one shared in the original layout.
        self.emb = [self._embedder(i) for i in range(cfg.depth)]
        self.final_emb = self._embedder(0)
        self.blocks = [self._block(i) for i in range(cfg.depth)]
        self._pos_cache = {}

    # -- weights ---------------------------------------------------------------------------------------------------
    def _name(self, what):
        return {"x": "x_embedder.proj.weight", "xb": "x_embedder.proj.bias"}[what] if self.layout == "original" \
            else {"x": "pos_embed.proj.weight", "xb": "pos_embed.proj.bias"}[what]

    def _expected(self):
        if self.layout == "original":
            names = [n for n, _ in original_shapes(self.cfg, include_pos_embed=False)]
            return names, {"pos_embed"}
        return [n for n, _, _, _ in diffusers_plan(self.cfg)], set()

    def _check_keys(self):
        names, optional = self._expected()
        missing = [n for n in names if n not in self.w]
        extra = [k for k in self.w if k not in names and k not in optional]
        if missing or extra:
            raise ValueError(f"{self.layout} layout: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                             f"unexpected {extra[:5]}{'...' if len(extra) > 5 else ''}")
        if self.layout == "original":
            shapes = original_shapes(self.cfg, include_pos_embed=False)
        else:
            shapes = [(n, s) for n, s, _, _ in diffusers_plan(self.cfg)]
        for n, s in shapes:
            if tuple(self.w[n].shape) != tuple(s):
                raise ValueError(f"{n}: shape {list(self.w[n].shape)}, expected {list(s)}")

    def _embedder(self, i):
        if self.layout == "original":
            return {"w1": self.w["t_embedder.mlp.0.weight"], "b1": self.w["t_embedder.mlp.0.bias"],
                    "w2": self.w["t_embedder.mlp.2.weight"], "b2": self.w["t_embedder.mlp.2.bias"],
                    "table": self.w["y_embedder.embedding_table.weight"]}
        e = f"transformer_blocks.{i}.norm1.emb."
        return {"w1": self.w[e + "timestep_embedder.linear_1.weight"], "b1": self.w[e + "timestep_embedder.linear_1.bias"],
                "w2": self.w[e + "timestep_embedder.linear_2.weight"], "b2": self.w[e + "timestep_embedder.linear_2.bias"],
                "table": self.w[e + "class_embedder.embedding_table.weight"]}

    def _block(self, i):
        if self.layout == "original":
            b = f"blocks.{i}."
            g = lambda n: self.w[b + n]  # noqa: E731
            return {"qkv_w": g("attn.qkv.weight"), "qkv_b": g("attn.qkv.bias"),
                    "proj_w": g("attn.proj.weight"), "proj_b": g("attn.proj.bias"),
                    "fc1_w": g("mlp.fc1.weight"), "fc1_b": g("mlp.fc1.bias"),
                    "fc2_w": g("mlp.fc2.weight"), "fc2_b": g("mlp.fc2.bias"),
                    "ada_w": g("adaLN_modulation.1.weight"), "ada_b": g("adaLN_modulation.1.bias")}
        b = f"transformer_blocks.{i}."
        g = lambda n: self.w[b + n]  # noqa: E731
        return {"qkv_w": torch.cat([g("attn1.to_q.weight"), g("attn1.to_k.weight"), g("attn1.to_v.weight")]),
                "qkv_b": torch.cat([g("attn1.to_q.bias"), g("attn1.to_k.bias"), g("attn1.to_v.bias")]),
                "proj_w": g("attn1.to_out.0.weight"), "proj_b": g("attn1.to_out.0.bias"),
                "fc1_w": g("ff.net.0.proj.weight"), "fc1_b": g("ff.net.0.proj.bias"),
                "fc2_w": g("ff.net.2.weight"), "fc2_b": g("ff.net.2.bias"),
                "ada_w": g("norm1.linear.weight"), "ada_b": g("norm1.linear.bias")}

    def final_weights(self):
        if self.layout == "original":
            return (self.w["final_layer.adaLN_modulation.1.weight"], self.w["final_layer.adaLN_modulation.1.bias"],
                    self.w["final_layer.linear.weight"], self.w["final_layer.linear.bias"])
        return (self.w["proj_out_1.weight"], self.w["proj_out_1.bias"],
                self.w["proj_out_2.weight"], self.w["proj_out_2.bias"])

    # -- pieces ----------------------------------------------------------------------------------------------------
    def pos_embed(self, gh, gw):
        key = (gh, gw)
        if key in self._pos_cache:
            return self._pos_cache[key]
        D, p = self.cfg.hidden_size, self.cfg.patch_size
        if self.layout == "original":
            stored = self.w.get("pos_embed")
            if stored is not None and stored.shape[1] == gh * gw and gh == gw:
                pe = stored.reshape(gh * gw, D)
            elif stored is not None and not self.allow_pos_embed_recompute:
                raise ValueError(f"the checkpoint's pos_embed has {stored.shape[1]} tokens; the input has "
                                 f"{gh}x{gw} (the original DiT only runs at its input_size)")
            else:
                pe = sincos_pos_embed_2d(D, gh, gw)
        else:
            # diffusers PatchEmbed: base_size = sample_size // p, interpolation_scale = max(sample_size // 64, 1);
            # the native grid gives plain integer coordinates.
            size = self.cfg.input_size
            base = size // p if size else gh
            interp = max(size // 64, 1) if size else 1
            pe = sincos_pos_embed_2d(D, gh, gw, base_size=base, interpolation_scale=interp)
        self._pos_cache[key] = pe
        return pe

    def condition(self, t, y, emb):
        """c = t_emb + y_emb, [B, D]."""
        f = timestep_embedding(t, self.numerics["freq_shift"])
        t_emb = linear(silu(linear(f, emb["w1"], emb["b1"])), emb["w2"], emb["b2"])
        return t_emb + emb["table"][y]

    def block(self, x, c, i):
        bw = self.blocks[i]
        mod = linear(silu(c), bw["ada_w"], bw["ada_b"])
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=1)
        h = modulate(layer_norm(x, self.numerics["norm1_eps"]), shift_msa, scale_msa)
        x = x + gate_msa[:, None, :] * attention(h, bw["qkv_w"], bw["qkv_b"], bw["proj_w"], bw["proj_b"],
                                                 self.cfg.num_heads)
        h = modulate(layer_norm(x, self.numerics["mlp_norm_eps"]), shift_mlp, scale_mlp)
        h = linear(gelu_tanh(linear(h, bw["fc1_w"], bw["fc1_b"])), bw["fc2_w"], bw["fc2_b"])
        return x + gate_mlp[:, None, :] * h

    # -- forward ---------------------------------------------------------------------------------------------------
    def forward(self, x, t, y, return_blocks=False):
        """x [B, C, H, W] fp32, t [B] (original scale, may be fractional), y [B] int64.
        Returns out [B, C_out, H, W] (and the list of every block's output [B, T, D] when return_blocks)."""
        x = x.to(torch.float32)
        B, C, H, W = x.shape
        p = self.cfg.patch_size
        if C != self.cfg.in_channels:
            raise ValueError(f"input has {C} channels, the model takes {self.cfg.in_channels}")
        t = torch.as_tensor(t)
        if t.dim() == 0:
            t = t.expand(B)
        y = torch.as_tensor(y, dtype=torch.int64).reshape(-1)
        if (y < 0).any() or (y > self.cfg.num_classes).any():
            raise ValueError(f"class labels must be in 0..{self.cfg.num_classes} (the last one is the null class)")
        gh, gw = H // p, W // p
        h = linear(patchify(x, p), self.patch_w, self.w[self._name("xb")]) + self.pos_embed(gh, gw)[None]  # (B,T,D)
        shared = self.layout == "original"
        c = self.condition(t, y, self.emb[0]) if shared or self.cfg.depth == 0 else None
        blocks = []
        for i in range(self.cfg.depth):
            ci = c if shared else self.condition(t, y, self.emb[i])
            h = self.block(h, ci, i)                                                            # (B, T, D)
            if return_blocks:
                blocks.append(h)
        cf = c if shared else self.condition(t, y, self.final_emb)
        ada_w, ada_b, lin_w, lin_b = self.final_weights()
        shift, scale = linear(silu(cf), ada_w, ada_b).chunk(2, dim=1)
        h = linear(modulate(layer_norm(h, self.numerics["final_norm_eps"]), shift, scale), lin_w, lin_b)
        out = unpatchify(h, p, self.cfg.out_channels, gh, gw)                                    # (B, C_out, H, W)
        return (out, blocks) if return_blocks else out

    def forward_with_cfg(self, x, t, y, cfg_scale, cfg_channels=None):
        """Guided forward on a [cond..., uncond...] batch (model-spec §1.12; diffusers DiTPipeline with 4 channels).
        The first half of x is duplicated; the first `cfg_channels` channels are guided, the rest pass through."""
        cfg_channels = self.numerics["cfg_channels"] if cfg_channels is None else cfg_channels
        half = x[: len(x) // 2]
        out = self.forward(torch.cat([half, half], dim=0), t, y)
        eps, rest = out[:, :cfg_channels], out[:, cfg_channels:]
        cond_eps, uncond_eps = torch.split(eps, len(eps) // 2, dim=0)
        half_eps = uncond_eps + cfg_scale * (cond_eps - uncond_eps)
        return torch.cat([torch.cat([half_eps, half_eps], dim=0), rest], dim=1)


def load_dit(path, num_heads=None, numerics=None, input_size=None, allow_pos_embed_recompute=False):
    """Loads a checkpoint in either layout (detected from the keys); returns a DiT with fp32 weights."""
    state, meta = safetensors_io.load_file(path)
    layout = detect_layout(state)
    if meta.get("layout") and meta["layout"] != layout:
        raise ValueError(f"{path}: metadata says layout={meta['layout']} but the keys are {layout}")
    cfg = infer_config(state, layout, meta, num_heads=num_heads, input_size=input_size)
    return DiT(state, cfg, layout, numerics=numerics, allow_pos_embed_recompute=allow_pos_embed_recompute)


def set_threads(n):
    if n:
        torch.set_num_threads(int(n))


# ----------------------------------------------------------------------------------------------------------------
# Original DiT diffusion (model-spec §1.13)
# ----------------------------------------------------------------------------------------------------------------

def linear_betas(num=NUM_TRAIN_TIMESTEPS):
    scale = 1000.0 / num
    return np.linspace(scale * 0.0001, scale * 0.02, num, dtype=np.float64)


def space_timesteps(num_timesteps, section_counts):
    """The kept original timesteps (a set). "N" (or "N,M,...": one count per equal section): fractional stride
    (size−1)/(N−1), cur_idx accumulated by float addition, Python round. "ddimN": the integer stride giving N."""
    if isinstance(section_counts, str):
        if section_counts.startswith("ddim"):
            want = int(section_counts[len("ddim"):])
            for stride in range(1, num_timesteps):
                if len(range(0, num_timesteps, stride)) == want:
                    return set(range(0, num_timesteps, stride))
            raise ValueError(f"cannot create exactly {want} steps with an integer stride")
        section_counts = [int(x) for x in section_counts.split(",")]
    elif isinstance(section_counts, int):
        section_counts = [section_counts]
    size_per, extra = divmod(num_timesteps, len(section_counts))
    start, steps = 0, []
    for i, count in enumerate(section_counts):
        size = size_per + (1 if i < extra else 0)
        if size < count:
            raise ValueError(f"cannot divide section of {size} steps into {count}")
        frac_stride = 1 if count <= 1 else (size - 1) / (count - 1)
        cur = 0.0
        for _ in range(count):
            steps.append(start + round(cur))
            cur += frac_stride
        start += size
    return set(steps)


class SpacedDiffusion:
    """Respaced GaussianDiffusion: float64 tables over the kept steps k = 0..K-1 (ascending original timesteps)."""

    def __init__(self, steps, learn_sigma=True, spacing=None, num_train=NUM_TRAIN_TIMESTEPS):
        base_acp = np.cumprod(1.0 - linear_betas(num_train), axis=0)
        use = space_timesteps(num_train, spacing if spacing is not None else str(steps))
        last, betas, self.timestep_map = 1.0, [], []
        for i, a in enumerate(base_acp):
            if i in use:
                betas.append(1.0 - a / last)
                last = a
                self.timestep_map.append(i)
        self.learn_sigma = learn_sigma
        self.betas = np.array(betas, dtype=np.float64)
        self.num_steps = len(self.betas)
        alphas = 1.0 - self.betas
        self.alphas_cumprod = np.cumprod(alphas, axis=0)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1)
        pv = self.betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_variance = pv
        self.posterior_log_variance_clipped = np.log(np.append(pv[1], pv[1:])) if len(pv) > 1 else np.array([])
        self.posterior_mean_coef1 = self.betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - self.alphas_cumprod)
        self.log_betas = np.log(self.betas)
        # FIXED_LARGE (learn_sigma=False): variance [pv[1], betas[1:]]
        self.fixed_large_log_variance = np.log(np.append(pv[1], self.betas[1:])) if len(pv) > 1 else np.log(self.betas)

    @staticmethod
    def gather(arr, k, like):
        """float64 table value at step k, cast to float32, broadcast to `like`'s shape (like _extract_into_tensor)."""
        idx = torch.full((like.shape[0],), k, dtype=torch.int64)
        res = torch.from_numpy(arr)[idx].float()
        return res.reshape(-1, *([1] * (like.dim() - 1))) + torch.zeros_like(like)

    def split_output(self, out, x):
        C = x.shape[1]
        if self.learn_sigma:
            return out[:, :C], out[:, C:2 * C]
        return out[:, :C], None

    def p_mean_variance(self, out, x, k):
        """x0 from ε (EPSILON mean type), posterior mean, and the model log-variance."""
        g = lambda a: self.gather(a, k, x)  # noqa: E731
        eps, v = self.split_output(out, x)
        if v is not None:   # LEARNED_RANGE
            min_log, max_log = g(self.posterior_log_variance_clipped), g(self.log_betas)
            frac = (v + 1) / 2
            log_var = frac * max_log + (1 - frac) * min_log
        else:               # FIXED_LARGE
            log_var = g(self.fixed_large_log_variance)
        x0 = g(self.sqrt_recip_alphas_cumprod) * x - g(self.sqrt_recipm1_alphas_cumprod) * eps
        mean = g(self.posterior_mean_coef1) * x0 + g(self.posterior_mean_coef2) * x
        return mean, log_var, x0

    def p_sample_step(self, out, x, k, noise):
        mean, log_var, _ = self.p_mean_variance(out, x, k)
        nonzero = torch.full((x.shape[0],), float(k != 0)).reshape(-1, *([1] * (x.dim() - 1)))
        return mean + nonzero * torch.exp(0.5 * log_var) * noise

    def ddim_step(self, out, x, k, noise, eta=0.0):
        g = lambda a: self.gather(a, k, x)  # noqa: E731
        _, _, x0 = self.p_mean_variance(out, x, k)
        eps = (g(self.sqrt_recip_alphas_cumprod) * x - x0) / g(self.sqrt_recipm1_alphas_cumprod)
        a, a_prev = g(self.alphas_cumprod), g(self.alphas_cumprod_prev)
        sigma = eta * torch.sqrt((1 - a_prev) / (1 - a)) * torch.sqrt(1 - a / a_prev)
        mean_pred = x0 * torch.sqrt(a_prev) + torch.sqrt(1 - a_prev - sigma ** 2) * eps
        nonzero = torch.full((x.shape[0],), float(k != 0)).reshape(-1, *([1] * (x.dim() - 1)))
        return mean_pred + nonzero * sigma * noise


# ----------------------------------------------------------------------------------------------------------------
# diffusers DDIMScheduler (model-spec §2.3)
# ----------------------------------------------------------------------------------------------------------------

class DDIMScheduler:
    def __init__(self, num_train=NUM_TRAIN_TIMESTEPS, beta_start=0.0001, beta_end=0.02, set_alpha_to_one=True,
                 steps_offset=0):
        self.num_train = num_train
        self.betas = torch.linspace(beta_start, beta_end, num_train, dtype=torch.float32)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.final_alpha_cumprod = torch.tensor(1.0) if set_alpha_to_one else self.alphas_cumprod[0]
        self.steps_offset = steps_offset
        self.timesteps = None

    def set_timesteps(self, steps):
        """"leading" spacing: arange(0, S)·(1000 // S), reversed (50 -> 980, 960, ..., 0)."""
        self.num_inference_steps = steps
        ratio = self.num_train // steps
        ts = (np.arange(0, steps) * ratio).round()[::-1].copy().astype(np.int64) + self.steps_offset
        self.timesteps = torch.from_numpy(ts)
        return self.timesteps

    def step(self, eps, t, x, eta=0.0, noise=None):
        t = int(t)
        prev_t = t - self.num_train // self.num_inference_steps
        a_t = self.alphas_cumprod[t]
        a_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.final_alpha_cumprod
        beta_t = 1 - a_t
        x0 = (x - beta_t ** 0.5 * eps) / a_t ** 0.5
        variance = ((1 - a_prev) / beta_t) * (1 - a_t / a_prev)
        std = eta * variance ** 0.5
        direction = (1 - a_prev - std ** 2) ** 0.5 * eps
        prev = a_prev ** 0.5 * x0 + direction
        if eta > 0:
            if noise is None:
                raise ValueError("eta > 0 needs the step noise")
            prev = prev + std * noise
        return prev


# ----------------------------------------------------------------------------------------------------------------
# Sampling loops
# ----------------------------------------------------------------------------------------------------------------

def _step_noise(step_noise, s, shape_like, n, generator):
    if step_noise is not None:
        z = step_noise[s].to(torch.float32)
        if tuple(z.shape) != (n,) + tuple(shape_like.shape[1:]):
            raise ValueError(f"step_noise[{s}] has shape {list(z.shape)}, expected {[n] + list(shape_like.shape[1:])}")
    else:
        z = torch.randn((n,) + tuple(shape_like.shape[1:]), generator=generator)
    reps = shape_like.shape[0] // n
    return torch.cat([z] * reps, dim=0) if reps > 1 else z


def _guided(model, x, t, y_full, cfg_scale, cfg_channels, use_cfg):
    tt = torch.full((x.shape[0],), int(t), dtype=torch.int64)
    if use_cfg:
        return model.forward_with_cfg(x, tt, y_full, cfg_scale, cfg_channels)
    return model.forward(x, tt, y_full)


def sample(model, noise, y, steps, cfg_scale=4.0, sampler="ddim", eta=0.0, cfg_channels=None,
           timestep_spacing=None, step_noise=None, generator=None, callback=None):
    """Runs a whole sampling loop and returns the final latent [n, C, H, W] (the cond half).

    timestep_spacing "fractional" = the original DiT diffusion (sampler "ddim" or "ancestral");
    "leading" = the diffusers DDIMScheduler (sampler "ddim"). CFG runs when cfg_scale is not None (original: always,
    as in sample.py; diffusers: when cfg_scale > 1, as in DiTPipeline). step_noise: [S, n, C, H, W] or a list of
    S tensors [n, C, H, W], noise of sampling step s (s = 0 is the noisiest); drawn from `generator` when None.
    callback(s, timestep, x_cond_half) is called after each step."""
    spacing = timestep_spacing or model.numerics["timestep_spacing"]
    cfg_channels = model.numerics["cfg_channels"] if cfg_channels is None else cfg_channels
    n = noise.shape[0]
    y = torch.as_tensor(y, dtype=torch.int64)
    null = torch.full((n,), model.cfg.num_classes, dtype=torch.int64)
    if step_noise is not None and len(step_noise) != steps:
        raise ValueError(f"step_noise has {len(step_noise)} entries for {steps} steps")
    if spacing == "fractional":
        use_cfg = cfg_scale is not None
        diff = SpacedDiffusion(steps, learn_sigma=model.cfg.learn_sigma)
        x = torch.cat([noise, noise]) if use_cfg else noise.clone()
        y_full = torch.cat([y, null]) if use_cfg else y
        for s, k in enumerate(reversed(range(diff.num_steps))):
            out = _guided(model, x, diff.timestep_map[k], y_full, cfg_scale, cfg_channels, use_cfg)
            z = _step_noise(step_noise, s, x, n, generator)
            if sampler == "ddim":
                x = diff.ddim_step(out, x, k, z, eta)
            elif sampler == "ancestral":
                x = diff.p_sample_step(out, x, k, z)
            else:
                raise ValueError(f"unknown sampler {sampler!r} (ddim or ancestral)")
            if callback:
                callback(s, diff.timestep_map[k], x[:n])
        return x[:n]
    if spacing == "leading":
        if sampler != "ddim":
            raise ValueError("the diffusers path (timestep_spacing=leading) only has the DDIM sampler")
        use_cfg = cfg_scale is not None and cfg_scale > 1
        sched = DDIMScheduler()
        ts = sched.set_timesteps(steps)
        C = noise.shape[1]
        x = torch.cat([noise, noise]) if use_cfg else noise.clone()
        y_full = torch.cat([y, null]) if use_cfg else y
        for s, t in enumerate(ts.tolist()):
            out = _guided(model, x, t, y_full, cfg_scale, cfg_channels, use_cfg)
            eps = out[:, :C] if model.cfg.learn_sigma else out
            z = _step_noise(step_noise, s, x, n, generator) if eta > 0 else None
            if use_cfg:  # DiTPipeline steps the duplicated batch [half, half]
                x = torch.cat([x[:n], x[:n]])
            x = sched.step(eps, t, x, eta=eta, noise=z)
            if callback:
                callback(s, t, x[:n])
        return x[:n]
    raise ValueError(f"unknown timestep_spacing {spacing!r} (fractional or leading)")


def sampling_timesteps(steps, spacing):
    """The original-scale timesteps the model sees, in sampling order."""
    if spacing == "fractional":
        return list(reversed(SpacedDiffusion(steps).timestep_map))
    if spacing == "leading":
        return DDIMScheduler().set_timesteps(steps).tolist()
    raise ValueError(spacing)


def sample_from_metadata(model, meta, noise, y, step_noise=None):
    """Runs the sampler a dump's metadata describes."""
    return sample(model, noise, y, steps=int(meta["steps"]), cfg_scale=float(meta["cfg_scale"]),
                  sampler=meta.get("sampler", "ddim"), eta=float(meta.get("eta", "0")),
                  cfg_channels=int(meta["cfg_channels"]) if "cfg_channels" in meta else None,
                  timestep_spacing=meta.get("timestep_spacing"), step_noise=step_noise)


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------

def compare(name, got, want, rtol):
    got, want = got.double(), want.double()
    if got.shape != want.shape:
        print(f"FAIL {name}: shape {list(got.shape)} vs {list(want.shape)}")
        return False
    abs_err = (got - want).abs().max().item() if want.numel() else 0.0
    rel = abs_err / max(want.abs().max().item(), 1e-30) if want.numel() else 0.0
    ok = rel <= rtol and bool(torch.isfinite(got).all())
    print(f"{'ok  ' if ok else 'FAIL'} {name:24s} max_abs={abs_err:.3e} max_rel={rel:.3e} (tol {rtol:g})")
    return ok


def cmd_verify(args):
    set_threads(args.threads)
    tensors, meta = safetensors_io.load_file(args.dump)
    if meta.get("format") != "blockdance.dump/1":
        print(f"{args.dump}: format={meta.get('format')!r}, expected blockdance.dump/1 — re-run "
              f"/usr/bin/python3 tools/make_fixtures.py", file=sys.stderr)
        return 2
    heads = args.num_heads or (int(meta["num_heads"]) if "num_heads" in meta else None)
    model = load_dit(args.weights, num_heads=heads, numerics=meta.get("layout"))
    print(f"weights {args.weights}: layout={model.layout} numerics={model.numerics_name} {model.cfg}")
    ok = True
    with torch.inference_mode():
        if "inputs.x" in tensors:
            out, blocks = model.forward(tensors["inputs.x"], tensors["inputs.t"], tensors["inputs.y"],
                                        return_blocks=True)
            for i, b in enumerate(blocks):
                if f"outputs.blocks.{i}" in tensors:
                    ok &= compare(f"outputs.blocks.{i}", b, tensors[f"outputs.blocks.{i}"], args.rtol_forward)
            if "outputs.out" in tensors:
                ok &= compare("outputs.out", out, tensors["outputs.out"], args.rtol_forward)
        if "sample.out" in tensors:
            got = sample_from_metadata(model, meta, tensors["sample.noise"], tensors["sample.y"],
                                       tensors.get("sample.step_noise"))
            ok &= compare("sample.out", got, tensors["sample.out"], args.rtol_sample)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def cmd_info(args):
    model = load_dit(args.weights, num_heads=args.num_heads)
    print(f"layout={model.layout} numerics={model.numerics_name}")
    print(model.cfg)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify", help="recompute a dump and compare")
    v.add_argument("--weights", required=True)
    v.add_argument("--dump", required=True)
    v.add_argument("--num-heads", type=int)
    v.add_argument("--threads", type=int)
    v.add_argument("--rtol-forward", type=float, default=1e-5)
    v.add_argument("--rtol-sample", type=float, default=1e-4)
    i = sub.add_parser("info", help="print the inferred configuration")
    i.add_argument("--weights", required=True)
    i.add_argument("--num-heads", type=int)
    args = ap.parse_args(argv)
    return {"verify": cmd_verify, "info": cmd_info}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
