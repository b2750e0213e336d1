#!/usr/bin/python3
"""Self-checks of the PyTorch reference (tools/dit_reference.py, tools/safetensors_io.py, tests/fixtures).

    /usr/bin/python3 tools/selfcheck_reference.py [--fixtures tests/fixtures]

Not part of CI (CI has no torch); run it after changing the reference or the fixtures. Each check compares a piece of
the reference with a computation written independently of it (torch.nn modules, nn.MultiheadAttention, einsum,
float64 formulas in a different but equivalent form, per-element Python math, hand-built bytes) and prints the max
difference. Exit status 0 only when every check passes.
"""

import argparse
import math
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(__file__))
import dit_reference as ref  # noqa: E402
import make_fixtures  # noqa: E402
import safetensors_io as st  # noqa: E402

RESULTS = []


def check(name, ok, detail=""):
    RESULTS.append((name, bool(ok)))
    print(f"{'ok  ' if ok else 'FAIL'} {name}{(': ' + detail) if detail else ''}")


def maxdiff(a, b):
    return (a.double() - b.double()).abs().max().item()


# ---------------------------------------------------------------------------------------------------- safetensors

def check_safetensors():
    g = torch.Generator().manual_seed(1)
    tensors = {
        "f64": torch.randn(3, 2, generator=g, dtype=torch.float64),
        "f32": torch.randn(5, generator=g),
        "f16": torch.randn(2, 3, generator=g).half(),
        "bf16": torch.randn(7, generator=g).bfloat16(),
        "i64": torch.tensor([-(2 ** 40), 3, 1000]),
        "i32": torch.tensor([[-7, 8]], dtype=torch.int32),
        "i16": torch.tensor([-300, 300], dtype=torch.int16),
        "i8": torch.tensor([-128, 127, 1], dtype=torch.int8),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 4),
        "scalar": torch.tensor(2.5),
    }
    meta = {"format": "blockdance.dump/1", "note": "ünïcode ok"}
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "a.safetensors")
        st.save_file(tensors, p, meta)
        back, m = st.load_file(p)
        same = all(back[k].dtype == v.dtype and back[k].shape == v.shape and torch.equal(back[k], v)
                   for k, v in tensors.items())
        check("safetensors round trip of 10 dtypes, empty and 0-d tensors", same and m == meta and
              list(back) == list(tensors))
        raw = open(p, "rb").read()
        (n,) = struct.unpack("<Q", raw[:8])
        check("safetensors header padded to a multiple of 8 with spaces",
              (8 + n) % 8 == 0 and raw[8:8 + n].rstrip(b" ").endswith(b"}"))
        # A file built by hand, byte for byte, as the format specifies.
        hdr = b'{"b":{"dtype":"I16","shape":[2],"data_offsets":[8,12]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
        hdr += b" " * ((8 - len(hdr) % 8) % 8)
        q = os.path.join(tmp, "hand.safetensors")
        with open(q, "wb") as f:
            f.write(struct.pack("<Q", len(hdr)) + hdr + struct.pack("<2f", 1.5, -2.0) + struct.pack("<2h", -3, 4))
        t, m = st.load_file(q)
        check("safetensors reads a hand-built file (out-of-order offsets)",
              t["a"].tolist() == [1.5, -2.0] and t["b"].tolist() == [-3, 4] and m == {})
        # Malformed files are rejected.
        bad = {
            "gap": b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
            "overflow": b'{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}',
            "size mismatch": b'{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}',
            "bad dtype": b'{"a":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}}',
            "bad metadata": b'{"__metadata__":{"x":1},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
        }
        rejected = []
        for what, h in bad.items():
            h += b" " * ((8 - len(h) % 8) % 8)
            with open(q, "wb") as f:
                f.write(struct.pack("<Q", len(h)) + h + b"\0" * 8)
            try:
                st.load_file(q)
            except st.SafetensorsError:
                rejected.append(what)
        with open(q, "wb") as f:
            f.write(struct.pack("<Q", 1000) + b"{}")
        try:
            st.load_file(q)
        except st.SafetensorsError:
            rejected.append("truncated")
        check("safetensors rejects malformed files", len(rejected) == len(bad) + 1, ", ".join(rejected))


# ---------------------------------------------------------------------------------------------------- embeddings

def check_embeddings():
    t = torch.tensor([0.0, 1.0, 42.0, 517.25, 999.0])
    for shift, div in ((0, 128), (1, 127)):
        emb = ref.timestep_embedding(t, shift)
        f64 = np.exp(-math.log(10000.0) * np.arange(128) / div)
        f32 = ref.timestep_frequencies(128, shift).double().numpy()
        rel = np.abs(f32 - f64).max() / f64.max()
        # element formula, using the reference's float32 frequencies so that only the formula is checked
        want = np.array([[math.cos(float(np.float32(tv) * np.float32(f))) for f in f32] +
                         [math.sin(float(np.float32(tv) * np.float32(f))) for f in f32] for tv in t.tolist()])
        d = np.abs(emb.double().numpy() - want).max()
        check(f"timestep embedding /{div}: [cos|sin] per element; freqs vs float64", d < 1e-6 and rel < 1e-6,
              f"max|emb-formula|={d:.2e}, freq rel err={rel:.2e}, emb(t=0)=[1..,0..]: "
              f"{bool((emb[0, :128] == 1).all() and (emb[0, 128:] == 0).all())}")
    orig, diff = ref.timestep_embedding(t, 0), ref.timestep_embedding(t, 1)
    check("timestep embedding: /127 differs from /128 (except the i=0 column)",
          maxdiff(orig[:, 1:128], diff[:, 1:128]) > 1e-2 and torch.equal(orig[:, 0], diff[:, 0]),
          f"max diff {maxdiff(orig, diff):.3f}")

    # 2-D pos-embed by per-token Python math straight from model-spec §1.8
    D, G = 32, 4
    pe = ref.sincos_pos_embed_2d(D, G, G).double()
    want = torch.zeros(G * G, D, dtype=torch.float64)
    for r in range(G):
        for c in range(G):
            for k in range(D // 4):
                w = 1.0 / 10000 ** (k / (D / 4))
                n = r * G + c
                want[n, k], want[n, D // 4 + k] = math.sin(c * w), math.cos(c * w)
                want[n, D // 2 + k], want[n, 3 * D // 4 + k] = math.sin(r * w), math.cos(r * w)
    check("2-D sin-cos pos-embed vs per-token formula (column first, [sin|cos])", maxdiff(pe, want) < 1e-7,
          f"max diff {maxdiff(pe, want):.2e}")
    pe2 = ref.sincos_pos_embed_2d(D, G, G, base_size=G, interpolation_scale=1)
    check("diffusers pos-embed at the native size equals the original one", torch.equal(pe2, pe.float()))


# ---------------------------------------------------------------------------------------------------- model

class ModuleDiT(nn.Module):
    """An independent DiT built from torch.nn modules (Conv2d patch embed, nn.LayerNorm, nn.MultiheadAttention or an
    einsum attention over separate q/k/v, nn.GELU(tanh), nn.Embedding, einsum unpatchify)."""

    def __init__(self, sd, cfg, flavour):
        super().__init__()
        self.cfg, self.flavour = cfg, flavour
        D, H, p, C = cfg.hidden_size, cfg.num_heads, cfg.patch_size, cfg.in_channels
        self.mlp_eps = 1e-5 if flavour == "diffusers" else 1e-6
        P = lambda t: nn.Parameter(t.clone(), requires_grad=False)  # noqa: E731
        pre = "x_embedder" if flavour == "original" else "pos_embed"
        self.conv = nn.Conv2d(C, D, p, stride=p)
        self.conv.weight, self.conv.bias = P(sd[f"{pre}.proj.weight"]), P(sd[f"{pre}.proj.bias"])

        def embedder(w1, b1, w2, b2, table):
            mlp = nn.Sequential(nn.Linear(256, D), nn.SiLU(), nn.Linear(D, D))
            mlp[0].weight, mlp[0].bias, mlp[2].weight, mlp[2].bias = P(w1), P(b1), P(w2), P(b2)
            e = nn.Embedding(cfg.num_classes + 1, D)
            e.weight = P(table)
            return nn.ModuleList([mlp, e])

        self.embedders = nn.ModuleList()
        self.blocks = nn.ModuleList()
        for i in range(cfg.depth):
            if flavour == "original":
                b = f"blocks.{i}."
                if i == 0:
                    self.embedders.append(embedder(sd["t_embedder.mlp.0.weight"], sd["t_embedder.mlp.0.bias"],
                                                   sd["t_embedder.mlp.2.weight"], sd["t_embedder.mlp.2.bias"],
                                                   sd["y_embedder.embedding_table.weight"]))
                attn = nn.MultiheadAttention(D, H, bias=True, batch_first=True)
                attn.in_proj_weight, attn.in_proj_bias = P(sd[b + "attn.qkv.weight"]), P(sd[b + "attn.qkv.bias"])
                attn.out_proj.weight, attn.out_proj.bias = P(sd[b + "attn.proj.weight"]), P(sd[b + "attn.proj.bias"])
                names = ("mlp.fc1", "mlp.fc2", "adaLN_modulation.1")
                blk = nn.ModuleDict({"attn": attn})
            else:
                b = f"transformer_blocks.{i}."
                e = b + "norm1.emb."
                self.embedders.append(embedder(sd[e + "timestep_embedder.linear_1.weight"],
                                               sd[e + "timestep_embedder.linear_1.bias"],
                                               sd[e + "timestep_embedder.linear_2.weight"],
                                               sd[e + "timestep_embedder.linear_2.bias"],
                                               sd[e + "class_embedder.embedding_table.weight"]))
                blk = nn.ModuleDict()
                for q in ("to_q", "to_k", "to_v", "to_out.0"):
                    lin = nn.Linear(D, D)
                    lin.weight, lin.bias = P(sd[b + f"attn1.{q}.weight"]), P(sd[b + f"attn1.{q}.bias"])
                    blk[q.replace(".", "_")] = lin
                names = ("ff.net.0.proj", "ff.net.2", "norm1.linear")
            for key, n in zip(("fc1", "fc2", "ada"), names):
                w = sd[b + n + ".weight"]
                lin = nn.Linear(w.shape[1], w.shape[0])
                lin.weight, lin.bias = P(w), P(sd[b + n + ".bias"])
                blk[key] = lin
            self.blocks.append(blk)
        fin = ("final_layer.adaLN_modulation.1", "final_layer.linear") if flavour == "original" else ("proj_out_1", "proj_out_2")
        self.fin_ada = nn.Linear(D, 2 * D)
        self.fin_ada.weight, self.fin_ada.bias = P(sd[fin[0] + ".weight"]), P(sd[fin[0] + ".bias"])
        w = sd[fin[1] + ".weight"]
        self.fin_lin = nn.Linear(D, w.shape[0])
        self.fin_lin.weight, self.fin_lin.bias = P(w), P(sd[fin[1] + ".bias"])
        if flavour == "original":
            self.pos = sd["pos_embed"][0].clone()
        else:
            self.pos = ref.sincos_pos_embed_2d(D, cfg.input_size // p, cfg.input_size // p)
        self.ln6 = nn.LayerNorm(D, eps=1e-6, elementwise_affine=False)
        self.ln_mlp = nn.LayerNorm(D, eps=self.mlp_eps, elementwise_affine=False)
        self.gelu = nn.GELU(approximate="tanh")

    def cond(self, t, y, i):
        mlp, table = self.embedders[i if self.flavour == "diffusers" else 0]
        return mlp(ref.timestep_embedding(t, 1 if self.flavour == "diffusers" else 0)) + table(y)

    def einsum_attention(self, blk, x):
        B, T, D = x.shape
        H = self.cfg.num_heads
        q, k, v = (blk[n](x).reshape(B, T, H, D // H) for n in ("to_q", "to_k", "to_v"))
        s = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(D // H)
        o = torch.einsum("bhqk,bkhd->bqhd", torch.softmax(s, dim=-1), v).reshape(B, T, D)
        return blk["to_out_0"](o)

    def forward(self, x, t, y):
        p, Cout = self.cfg.patch_size, self.cfg.out_channels
        h = self.conv(x).flatten(2).transpose(1, 2) + self.pos
        blocks = []
        for i, blk in enumerate(self.blocks):
            c = self.cond(t, y, i)
            sm, cm, gm, sf, cf, gf = blk["ada"](nn.functional.silu(c)).chunk(6, dim=1)
            a = self.ln6(h) * (1 + cm.unsqueeze(1)) + sm.unsqueeze(1)
            if self.flavour == "original":
                a = blk["attn"](a, a, a, need_weights=False)[0]
            else:
                a = self.einsum_attention(blk, a)
            h = h + gm.unsqueeze(1) * a
            m = self.ln_mlp(h) * (1 + cf.unsqueeze(1)) + sf.unsqueeze(1)
            h = h + gf.unsqueeze(1) * blk["fc2"](self.gelu(blk["fc1"](m)))
            blocks.append(h)
        c = self.cond(t, y, 0)
        shift, scale = self.fin_ada(nn.functional.silu(c)).chunk(2, dim=1)
        h = self.fin_lin(self.ln6(h) * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1))
        n, T = h.shape[:2]
        g = int(math.isqrt(T))
        h = h.reshape(n, g, g, p, p, Cout)
        return torch.einsum("nhwpqc->nchpwq", h).reshape(n, Cout, g * p, g * p), blocks


def check_model(fx):
    for stem, layouts in (("dit_tiny", ("original", "diffusers")), ("dit_tiny_p4", ("original",))):
        for layout in layouts:
            wpath = os.path.join(fx, f"{stem}_{layout}.safetensors")
            dump, _ = st.load_file(os.path.join(fx, f"{stem}_{layout}.dump.safetensors"))
            model = ref.load_dit(wpath)
            sd, _ = st.load_file(wpath)
            indep = ModuleDiT(sd, model.cfg, layout).eval()
            x, t, y = dump["inputs.x"], dump["inputs.t"], dump["inputs.y"]
            with torch.inference_mode():
                out, blocks = model.forward(x, t, y, return_blocks=True)
                out2, blocks2 = indep(x, t, y)
            d = max([maxdiff(out, out2)] + [maxdiff(a, b) for a, b in zip(blocks, blocks2)])
            rel = d / out.abs().max().item()
            check(f"{stem} {layout}: reference forward vs torch.nn-module DiT "
                  f"({'nn.MultiheadAttention' if layout == 'original' else 'einsum attention'})",
                  rel < 2e-6, f"max abs diff {d:.2e} (rel {rel:.2e}) over out and {len(blocks)} blocks")
            d = max([maxdiff(out, dump["outputs.out"])] +
                    [maxdiff(b, dump[f"outputs.blocks.{i}"]) for i, b in enumerate(blocks)])
            check(f"{stem} {layout}: reference reproduces the committed dump", d == 0.0, f"max diff {d:.2e}")

    # attention alone vs nn.MultiheadAttention
    g = torch.Generator().manual_seed(3)
    D, H = 24, 3
    x = torch.randn(2, 7, D, generator=g)
    w, b = torch.randn(3 * D, D, generator=g) / 5, torch.randn(3 * D, generator=g)
    pw, pb = torch.randn(D, D, generator=g) / 5, torch.randn(D, generator=g)
    mha = nn.MultiheadAttention(D, H, bias=True, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(w)
        mha.in_proj_bias.copy_(b)
        mha.out_proj.weight.copy_(pw)
        mha.out_proj.bias.copy_(pb)
        d = maxdiff(ref.attention(x, w, b, pw, pb, H), mha(x, x, x, need_weights=False)[0])
    check("attention (timm head layout) vs nn.MultiheadAttention, T=7 D=24 H=3", d < 1e-5, f"max diff {d:.2e}")

    # unpatchify vs the element mapping of model-spec §1.11; patchify vs Conv2d
    p, C, h, w = 2, 3, 2, 3
    xs = torch.randn(1, h * w, p * p * C, generator=g)
    u = ref.unpatchify(xs, p, C, h, w)
    ok = all(u[0, ch, hi * p + pi, wi * p + pj] == xs[0, hi * w + wi, (pi * p + pj) * C + ch]
             for ch in range(C) for hi in range(h) for wi in range(w) for pi in range(p) for pj in range(p))
    check("unpatchify element mapping out[n,c,hi·p+pi,wi·p+pj] = x[n,hi·w+wi,(pi·p+pj)·C+c] (non-square)", ok)
    img = torch.randn(2, C, 4, 6, generator=g)
    conv = nn.Conv2d(C, 5, p, stride=p)
    with torch.no_grad():
        d = maxdiff(ref.linear(ref.patchify(img, p), conv.weight.reshape(5, -1), conv.bias),
                    conv(img).flatten(2).transpose(1, 2))
    check("patch embed as GEMM (c,i,j order) vs Conv2d, non-square", d < 1e-5, f"max diff {d:.2e}")

    # layouts and numerics
    o_path, d_path = (os.path.join(fx, f"dit_tiny_{l}.safetensors") for l in ("original", "diffusers"))
    dump, _ = st.load_file(os.path.join(fx, "dit_tiny_original.dump.safetensors"))
    x, t, y = dump["inputs.x"], dump["inputs.t"], dump["inputs.y"]
    with torch.inference_mode():
        o = ref.load_dit(o_path).forward(x, t, y)
        dd = ref.load_dit(d_path).forward(x, t, y)
        d_as_o = ref.load_dit(d_path, numerics="original").forward(x, t, y)
        o_as_d = ref.load_dit(o_path, numerics="diffusers").forward(x, t, y)
    check("original vs diffusers numerics on the same network: outputs differ", maxdiff(o, dd) > 1e-2,
          f"max diff {maxdiff(o, dd):.3e}")
    check("diffusers-layout file under original numerics == original file (conversion is exact)",
          maxdiff(o, d_as_o) == 0.0 and maxdiff(dd, o_as_d) == 0.0,
          f"max diffs {maxdiff(o, d_as_o):.1e}, {maxdiff(dd, o_as_d):.1e}")
    only = {}
    for name, fn in (("freq /127 only", dict(freq_shift=1)), ("MLP LayerNorm eps 1e-5 only", dict(mlp_norm_eps=1e-5))):
        m = ref.load_dit(o_path)
        m.numerics = dict(m.numerics, **fn)
        with torch.inference_mode():
            only[name] = maxdiff(m.forward(x, t, y), o)
    check("each diffusers numerics difference alone changes the output", all(v > 1e-6 for v in only.values()),
          ", ".join(f"{k}: {v:.2e}" for k, v in only.items()))
    # diffusers blocks use their own embedder copy
    sd, meta = st.load_file(d_path)
    sd["transformer_blocks.2.norm1.emb.class_embedder.embedding_table.weight"] += 0.1
    m = ref.DiT(sd, ref.infer_config(sd, "diffusers", meta), "diffusers")
    with torch.inference_mode():
        out, bl = m.forward(x, t, y, return_blocks=True)
        _, bl0 = ref.load_dit(d_path).forward(x, t, y, return_blocks=True)
    check("diffusers layout: block i uses its own embedder copy", maxdiff(bl[1], bl0[1]) == 0 and maxdiff(bl[2], bl0[2]) > 0)
    c2 = ref.load_dit(os.path.join(fx, "dit_tiny_p4_original.safetensors")).cfg
    check("configuration inferred from the second checkpoint",
          (c2.depth, c2.hidden_size, c2.num_heads, c2.patch_size, c2.out_channels, c2.num_classes, c2.input_size)
          == (3, 48, 3, 4, 4, 7, 16), str(c2))

    # CFG semantics
    model = ref.load_dit(o_path)
    with torch.inference_mode():
        xx = torch.cat([x[:2], x[2:]])
        yy = torch.tensor([1, 8, 10, 10])
        tt = torch.tensor([500, 500, 500, 500])
        raw = model.forward(torch.cat([x[:2], x[:2]]), tt, yy)
        for ch in (3, 4):
            g_ = model.forward_with_cfg(xx, tt, yy, 4.0, ch)
            want = raw[2:, :ch] + 4.0 * (raw[:2, :ch] - raw[2:, :ch])
            ok = (maxdiff(g_[:2, :ch], want) < 1e-5 and maxdiff(g_[2:, :ch], want) < 1e-5
                  and torch.equal(g_[:2, ch:], raw[:2, ch:]) and torch.equal(g_[2:, ch:], raw[2:, ch:]))
            check(f"forward_with_cfg({ch} channels): guided channels, the rest raw per half, x's 2nd half ignored", ok)


# ---------------------------------------------------------------------------------------------------- samplers

class ToyModel:
    """A cheap deterministic stand-in for the network, used to check the samplers' arithmetic."""

    def __init__(self, learn_sigma=True):
        self.cfg = ref.DiTConfig(1, 4, 1, 1, 4, 8 if learn_sigma else 4, 10)
        self.numerics = ref.NUMERICS["original"]

    def forward(self, x, t, y):
        tt = t.float().reshape(-1, 1, 1, 1) / 1000
        eps = torch.tanh(0.7 * x + tt) * 0.9 + 0.05 * y.float().reshape(-1, 1, 1, 1)
        if self.cfg.learn_sigma:
            return torch.cat([eps, torch.sin(x + 3 * tt)], dim=1)
        return eps


def check_schedules():
    r50 = sorted(ref.space_timesteps(1000, "50"))
    check("space_timesteps(1000, '50') = 0, 20, 41, 61, 82, 102, 122, 143, ..., 958, 979, 999",
          r50[:8] == [0, 20, 41, 61, 82, 102, 122, 143] and r50[-3:] == [958, 979, 999] and len(r50) == 50,
          f"{r50[:8]} ... {r50[-3:]}")
    r250 = sorted(ref.space_timesteps(1000, "250"))
    check("space_timesteps(1000, '250') = 0, 4, 8, ..., 991, 995, 999",
          r250[:3] == [0, 4, 8] and r250[-3:] == [991, 995, 999] and len(r250) == 250)
    # independent: round-half-even of i·999/(n−1) accumulated
    r10 = sorted(ref.space_timesteps(1000, "10"))
    check("space_timesteps(1000, '10') / 'ddim10'", r10 == [0, 111, 222, 333, 444, 555, 666, 777, 888, 999]
          and sorted(ref.space_timesteps(1000, "ddim10")) == list(range(0, 1000, 100)), str(r10))
    lead = ref.DDIMScheduler().set_timesteps(50).tolist()
    check("diffusers leading spacing, 50 steps = 980, 960, ..., 0", lead == list(range(980, -1, -20)))
    check("leading spacing, 10 steps", ref.sampling_timesteps(10, "leading") == list(range(900, -1, -100)))
    acp = np.cumprod(1 - ref.linear_betas())
    check("ᾱ[0] = 0.9999, ᾱ[999] = 4.0358e-5", abs(acp[0] - 0.9999) < 1e-12 and abs(acp[999] - 4.0358e-5) < 1e-8,
          f"ᾱ[999] = {acp[999]:.6e}")
    sp = ref.SpacedDiffusion(50)
    d = np.abs(sp.alphas_cumprod - acp[sp.timestep_map]).max()
    check("respaced ᾱ equals the original ᾱ at the kept steps", d < 1e-15, f"max diff {d:.1e}")
    sched = ref.DDIMScheduler()
    d = (sched.alphas_cumprod.double() - torch.from_numpy(acp)).abs().max().item()
    check("diffusers float32 ᾱ (torch.cumprod) vs float64", d < 1e-5, f"max diff {d:.2e}")


def indep_original(model, noise, y, steps, sampler, eta, step_noise):
    """float64 loop in the textbook form: DDPM mean 1/√α_k (x − β_k/√(1−ᾱ_k) ε); DDIM in the diffusers form.
    `model` needs .cfg.learn_sigma and .forward(x float32, t int64 [n], y) -> [n, C_out, H, W]."""
    acp_full = np.cumprod(1 - ref.linear_betas())
    kept = sorted(ref.space_timesteps(1000, str(steps)))
    acp = acp_full[kept]
    acp_prev = np.concatenate([[1.0], acp[:-1]])
    beta = 1 - acp / acp_prev
    x = noise.double().clone()
    C = x.shape[1]
    for s, k in enumerate(reversed(range(len(kept)))):
        out = model.forward(x.float(), torch.full((x.shape[0],), kept[k]), y).double()
        eps = out[:, :C]
        if sampler == "ancestral":
            mean = (x - beta[k] / math.sqrt(1 - acp[k]) * eps) / math.sqrt(1 - beta[k])
            tilde = beta * (1 - acp_prev) / (1 - acp)
            min_log = math.log(tilde[k] if k > 0 else tilde[1])
            max_log = math.log(beta[k])
            if model.cfg.learn_sigma:
                frac = (out[:, C:] + 1) / 2
                log_var = frac * max_log + (1 - frac) * min_log
            else:
                log_var = torch.full_like(x, math.log(beta[k] if k > 0 else tilde[1]))
            x = mean + (k > 0) * torch.exp(0.5 * log_var) * step_noise[s].double()
        else:
            x0 = (x - math.sqrt(1 - acp[k]) * eps) / math.sqrt(acp[k])
            var = (1 - acp_prev[k]) / (1 - acp[k]) * (1 - acp[k] / acp_prev[k])
            std = eta * math.sqrt(var)
            x = math.sqrt(acp_prev[k]) * x0 + math.sqrt(1 - acp_prev[k] - std ** 2) * eps
            x = x + (k > 0) * std * step_noise[s].double()
    return x


class IndependentGuided:
    """CFG computed separately from the reference: two forwards of the torch.nn-module DiT (cond and uncond batches
    of n), guidance on the first `channels` channels, the rest of the channels from the conditional forward."""

    def __init__(self, net, scale, channels):
        self.net, self.scale, self.channels = net, scale, channels
        self.cfg = net.cfg

    def forward(self, x, t, y):
        c = self.net(x, t, y)[0]
        u = self.net(x, t, torch.full_like(y, self.cfg.num_classes))[0]
        ch = self.channels
        return torch.cat([u[:, :ch] + self.scale * (c[:, :ch] - u[:, :ch]), c[:, ch:]], dim=1)


def indep_leading(model, noise, y, steps, eta, step_noise):
    acp = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
    x = noise.double().clone()
    C = x.shape[1]
    for s, t in enumerate(range((steps - 1) * (1000 // steps), -1, -(1000 // steps))):
        eps = model.forward(x.float(), torch.full((x.shape[0],), t), y).double()[:, :C]
        a, ap = acp[t], (acp[t - 1000 // steps] if t - 1000 // steps >= 0 else 1.0)
        x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
        std = eta * math.sqrt((1 - ap) / (1 - a) * (1 - a / ap))
        x = math.sqrt(ap) * x0 + math.sqrt(1 - ap - std ** 2) * eps + std * step_noise[s].double()
    return x


def check_samplers():
    g = torch.Generator().manual_seed(5)
    noise = torch.randn(2, 4, 4, 4, generator=g)
    y = torch.tensor([1, 2])
    for learn_sigma in (True, False):
        model = ToyModel(learn_sigma)
        for sampler, eta, steps in (("ddim", 0.0, 10), ("ddim", 0.5, 10), ("ancestral", 0.0, 10), ("ancestral", 0.0, 50)):
            sn = torch.randn(steps, 2, 4, 4, 4, generator=g)
            got = ref.sample(model, noise, y, steps, cfg_scale=None, sampler=sampler, eta=eta,
                             timestep_spacing="fractional", step_noise=sn)
            want = indep_original(model, noise, y, steps, sampler, eta, sn)
            rel = maxdiff(got, want) / want.abs().max().item()
            check(f"original {sampler} eta={eta} {steps} steps (learn_sigma={learn_sigma}) vs float64 textbook form",
                  rel < 2e-5, f"max rel diff {rel:.2e}")
    model = ToyModel(True)
    for eta in (0.0, 0.5):
        sn = torch.randn(10, 2, 4, 4, 4, generator=g)
        got = ref.sample(model, noise, y, 10, cfg_scale=None, sampler="ddim", eta=eta, timestep_spacing="leading",
                         step_noise=sn)
        want = indep_leading(model, noise, y, 10, eta, sn)
        rel = maxdiff(got, want) / want.abs().max().item()
        check(f"diffusers DDIM (leading) eta={eta} vs float64", rel < 1e-4, f"max rel diff {rel:.2e}")
    # step noise: the last entry has no effect; the others do
    sn = torch.randn(10, 2, 4, 4, 4, generator=g)
    base = ref.sample(model, noise, y, 10, None, "ancestral", timestep_spacing="fractional", step_noise=sn)
    sn2 = sn.clone()
    sn2[9] += 1
    sn3 = sn.clone()
    sn3[0] += 1
    same = torch.equal(base, ref.sample(model, noise, y, 10, None, "ancestral", timestep_spacing="fractional", step_noise=sn2))
    diff = not torch.equal(base, ref.sample(model, noise, y, 10, None, "ancestral", timestep_spacing="fractional", step_noise=sn3))
    check("step_noise[S-1] (final step) has no effect; step_noise[0] does", same and diff)


def check_dump_sampling(fx):
    """Each committed sample.out against an independent float64 sampler driving the torch.nn-module DiT."""
    for f in sorted(os.listdir(fx)):
        if not f.endswith(".dump.safetensors"):
            continue
        d, meta = st.load_file(os.path.join(fx, f))
        sd, wmeta = st.load_file(os.path.join(fx, meta["weights"]))
        layout = meta["layout"]
        net = ModuleDiT(sd, ref.infer_config(sd, layout, wmeta), layout).eval()
        model = IndependentGuided(net, float(meta["cfg_scale"]), int(meta["cfg_channels"]))
        steps, eta = int(meta["steps"]), float(meta["eta"])
        sn = d.get("sample.step_noise", torch.zeros((steps,) + tuple(d["sample.noise"].shape)))
        with torch.inference_mode():
            if meta["timestep_spacing"] == "fractional":
                want = indep_original(model, d["sample.noise"], d["sample.y"], steps, meta["sampler"], eta, sn)
            else:
                want = indep_leading(model, d["sample.noise"], d["sample.y"], steps, eta, sn)
        rel = maxdiff(d["sample.out"], want) / want.abs().max().item()
        check(f"{f}: sample.out vs independent float64 sampler + nn-module DiT + separate-batch CFG", rel < 1e-4,
              f"max rel diff {rel:.2e} (max |out| {want.abs().max().item():.1f})")
    # the sampling sections are sensitive to the choices they encode
    d, meta = st.load_file(os.path.join(fx, "dit_tiny_original.dump.safetensors"))
    model = ref.load_dit(os.path.join(fx, meta["weights"]))
    variants = {"cfg_channels=4": dict(cfg_channels=4), "timestep_spacing=leading": dict(timestep_spacing="leading"),
                "cfg_scale=3.9": dict(cfg_scale=3.9)}
    rels = {}
    for name, kw in variants.items():
        args = dict(steps=10, cfg_scale=4.0, sampler="ddim", eta=0.0, cfg_channels=3, timestep_spacing="fractional")
        args.update(kw)
        with torch.inference_mode():
            got = ref.sample(model, d["sample.noise"], d["sample.y"], **args)
        rels[name] = maxdiff(got, d["sample.out"]) / d["sample.out"].abs().max().item()
    check("dit_tiny_original.dump sample.out is sensitive to cfg_channels, spacing and cfg_scale",
          min(rels.values()) > 1e-3, ", ".join(f"{k}: rel {v:.2e}" for k, v in rels.items()))


# ---------------------------------------------------------------------------------------------------- fixtures

def check_fixtures(fx):
    with tempfile.TemporaryDirectory() as tmp:
        files = make_fixtures.generate(tmp)
        differ = [f for f in files if open(os.path.join(tmp, f), "rb").read() != open(os.path.join(fx, f), "rb").read()]
    check("tools/make_fixtures.py regenerates tests/fixtures byte for byte", not differ, ", ".join(differ))
    total = sum(os.path.getsize(os.path.join(fx, f)) for f in os.listdir(fx))
    check("fixtures total < 3 MB", total < 3 * 1024 * 1024, f"{total} bytes")
    here = os.path.dirname(os.path.abspath(__file__))
    for f in sorted(files):
        if f.endswith(".dump.safetensors"):
            _, meta = st.read_header(os.path.join(fx, f))
            r = subprocess.run([sys.executable, os.path.join(here, "dit_reference.py"), "verify",
                                "--weights", os.path.join(fx, meta["weights"]), "--dump", os.path.join(fx, f)],
                               capture_output=True, text=True)
            check(f"dit_reference.py verify {f}", r.returncode == 0, r.stdout.strip().splitlines()[-1] if r.stdout else r.stderr)
    # the diffusers dump also verifies against the original-layout weights (same network, diffusers numerics)
    r = subprocess.run([sys.executable, os.path.join(here, "dit_reference.py"), "verify",
                        "--weights", os.path.join(fx, "dit_tiny_original.safetensors"),
                        "--dump", os.path.join(fx, "dit_tiny_diffusers.dump.safetensors")], capture_output=True, text=True)
    check("diffusers dump verifies against the original-layout weights", r.returncode == 0)


def main(argv=None):
    ap = argparse.ArgumentParser()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--fixtures", default=os.path.join(root, "tests", "fixtures"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    check_safetensors()
    check_embeddings()
    check_schedules()
    check_samplers()
    check_model(args.fixtures)
    check_dump_sampling(args.fixtures)
    check_fixtures(args.fixtures)
    failed = [n for n, ok in RESULTS if not ok]
    print(f"{len(RESULTS) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
