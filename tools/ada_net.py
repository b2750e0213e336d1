#!/usr/bin/python3
"""BlockDance-Ada's decision network (BlockDance paper §3.4, Fig. 6; `shared/papers/blockdance-paper.txt`), the PyTorch
side: its definition, its safetensors file, the greedy plan it implies, and parity dumps for the C# network.

The paper's network reads the intermediate latent after the first ρ·S steps and the condition embedding and outputs,
for each remaining step, the probability that the step is a cache step (else a reuse step); "three transformer blocks
and an MLP". Ours, for a class-conditional pixel- or latent-space DiT, and for a video DiT (Latte) whose clips of F
frames it reads with the frames stacked as channels (a clip [B, F, C, H, W] is viewed as [B, F·C, H, W], the same
memory: frame f's channel c is input channel f·C + c; the patch embedding then sees every frame of a patch position at
once, which is how the network can tell motion apart; the tokens stay the T patch positions, so a video network costs
what an image network does):

    x_ρ [B, F·C, H, W] --x_embedder (conv p×p)--> + pos_embed (fixed 2-D sin-cos)  -> h [B, T, D]   (F = 1: images)
    y   [B]          --y_embedder table------------------------------------------> c [B, D]   (no timestep: ρ is fixed)
    h = DiT block_i(h, c), i = 0 … depth−1     adaLN-Zero blocks, the DiT's own block (keys blocks.{i}.*)
    h = LayerNorm(h) (no affine, eps 1e-6); pooled = mean over the T tokens                      -> [B, D]
    logits = head.fc2(GELU_tanh(head.fc1(pooled)))                                              -> [B, K]
    p = sigmoid(logits): p[b, j] = P(step ρ·S + j is a Cache step), K = S − ρ·S

Keys (the DiT's names where the piece is the DiT's): pos_embed (1, T, D), x_embedder.proj.{weight (D, F·C, p, p), bias},
y_embedder.embedding_table.weight (classes + 1, D) (the last row, DiT's null class, is unused), blocks.{i}.
{adaLN_modulation.1, attn.qkv, attn.proj, mlp.fc1, mlp.fc2}.{weight, bias}, head.fc1.{weight (D, D), bias},
head.fc2.{weight (K, D), bias}. Metadata: format blockdance.weights/1, model "blockdance-ada", the network's shape
(input_size, in_channels C per frame, num_frames F, patch_size, hidden_size, depth, num_heads, num_classes; a file
without num_frames is an image network, F = 1) and the run it decides for: steps S,
rho_steps ρ·S, max_reuse, boundary (the BlockDance boundary of the base model), threshold, base_model, sampler,
guidance.

The plan (`greedy_plan`, the same rule in C#): steps 0 … ρ·S−2 are Full, step ρ·S−1 is Cache (it stores the feature
the first reuse needs); for j = 0 … K−1 the step is Cache when p[j] ≥ threshold or when the last max_reuse steps were
all Reuse (the paper does not bound consecutive reuses; an unbounded run of reuses lets the shallow feature go stale,
so the bound is ours, a parameter, stored with the network), else Reuse.

Command line:
  /usr/bin/python3 tools/ada_net.py random --out W.safetensors [--depth 2 --hidden 64 --heads 4 --patch 4
      --input-size 32 --channels 3 --frames 1 --classes 8 --steps 10 --rho-steps 4 --seed 0]
  /usr/bin/python3 tools/ada_net.py dump --weights W --out D.safetensors [--batch 3 --seed 1]
      [--inputs POOL.safetensors [--first 0]]   the inputs from a tools/ada_train.py pool (its x_rho and labels: the
      latents the network reads in a real run) instead of random ones
"""

import argparse
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dit_reference as ref  # noqa: E402
import safetensors_io  # noqa: E402
import train_dit as td  # noqa: E402

MODEL_NAME = "blockdance-ada"


class AdaConfig:
    """The network's shape and the run it decides for."""

    FIELDS = ("input_size", "in_channels", "num_frames", "patch_size", "hidden_size", "depth", "num_heads",
              "num_classes", "steps", "rho_steps", "max_reuse", "boundary")

    def __init__(self, input_size=32, in_channels=3, patch_size=4, hidden_size=64, depth=3, num_heads=4,
                 num_classes=8, steps=50, rho_steps=20, max_reuse=3, boundary=9, threshold=0.5,
                 base_model="", sampler="ddim", guidance=4.0, num_frames=1):
        self.input_size, self.in_channels, self.patch_size = input_size, in_channels, patch_size
        self.num_frames = num_frames
        self.hidden_size, self.depth, self.num_heads, self.num_classes = hidden_size, depth, num_heads, num_classes
        self.steps, self.rho_steps, self.max_reuse, self.boundary = steps, rho_steps, max_reuse, boundary
        self.threshold, self.base_model, self.sampler, self.guidance = threshold, base_model, sampler, guidance
        if not 1 <= rho_steps < steps:
            raise ValueError(f"rho_steps {rho_steps} must lie in [1, steps − 1] (steps {steps})")
        if num_frames < 1:
            raise ValueError(f"num_frames {num_frames} must be at least 1")
        if input_size % patch_size or hidden_size % num_heads:
            raise ValueError("input_size must be a multiple of patch_size and hidden_size of num_heads")

    @property
    def outputs(self):
        """K: one decision per step after the first rho_steps."""
        return self.steps - self.rho_steps

    @property
    def embed_channels(self):
        """Input channels of the patch embedding: F·C (frames stacked as channels)."""
        return self.num_frames * self.in_channels

    @property
    def tokens(self):
        return (self.input_size // self.patch_size) ** 2

    def metadata(self):
        meta = {"format": "blockdance.weights/1", "model": MODEL_NAME, "layout": "original", "mlp_ratio": "4"}
        meta.update({f: str(getattr(self, f)) for f in self.FIELDS})
        meta.update({"threshold": repr(float(self.threshold)), "base_model": self.base_model,
                     "sampler": self.sampler, "guidance": repr(float(self.guidance))})
        return meta

    @staticmethod
    def from_metadata(meta):
        if meta.get("model") != MODEL_NAME:
            raise ValueError(f"not a {MODEL_NAME} network: metadata model = {meta.get('model')!r}")
        kw = {f: int(meta[f]) for f in AdaConfig.FIELDS if f != "num_frames"}
        kw["num_frames"] = int(meta.get("num_frames", "1"))
        return AdaConfig(threshold=float(meta.get("threshold", 0.5)), base_model=meta.get("base_model", ""),
                         sampler=meta.get("sampler", "ddim"), guidance=float(meta.get("guidance", 4.0)), **kw)


class AdaNet(nn.Module):
    """The decision network (module tree = the key names above)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        D, p, g = cfg.hidden_size, cfg.patch_size, cfg.input_size // cfg.patch_size
        self.x_embedder = td.PatchEmbed(p, cfg.embed_channels, D)
        self.pos_embed = nn.Parameter(ref.sincos_pos_embed_2d(D, g, g).reshape(1, g * g, D), requires_grad=False)
        self.y_embedder = td.LabelEmbedder(cfg.num_classes, D)
        self.blocks = nn.ModuleList([td.DiTBlock(D, cfg.num_heads) for _ in range(cfg.depth)])
        self.head = nn.Module()
        self.head.fc1 = nn.Linear(D, D)
        self.head.fc2 = nn.Linear(D, cfg.outputs)
        self._init()

    def _init(self):
        """DiT's initialisation for the shared pieces (adaLN-Zero: every block starts as the identity); the head's last
        layer starts at zero weight and bias +1 (p ≈ 0.73 everywhere: the untrained policy mostly caches, the safe end)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.constant_(m.bias, 0)
        w = self.x_embedder.proj.weight.data
        nn.init.xavier_uniform_(w.view([w.shape[0], -1]))
        nn.init.constant_(self.x_embedder.proj.bias, 0)
        nn.init.normal_(self.y_embedder.embedding_table.weight, std=1.0)
        for b in self.blocks:
            nn.init.constant_(b.adaLN_modulation[-1].weight, 0)
            nn.init.constant_(b.adaLN_modulation[-1].bias, 0)
        nn.init.constant_(self.head.fc2.weight, 0)
        nn.init.constant_(self.head.fc2.bias, 1.0)

    def forward(self, x, y, trace=None):
        """x [B, C, H, W] (the latent after rho_steps steps) or a clip [B, F, C, H, W], y [B] class indices -> logits
        [B, K]."""
        cfg = self.cfg
        want = (cfg.in_channels, cfg.input_size, cfg.input_size)
        if tuple(x.shape[-3:]) != want or (cfg.num_frames > 1 and (x.dim() != 5 or x.shape[1] != cfg.num_frames)):
            raise ValueError(f"input {list(x.shape)}: the network reads "
                             f"{'[B, %d, ' % cfg.num_frames if cfg.num_frames > 1 else '[B, '}{', '.join(map(str, want))}]")
        x = x.reshape(x.shape[0], cfg.embed_channels, cfg.input_size, cfg.input_size)   # frames stacked as channels
        h = self.x_embedder(x) + self.pos_embed                  # [B, T, D]
        c = self.y_embedder(y)                                   # [B, D]
        for i, b in enumerate(self.blocks):
            h = b(h, c)
            if trace is not None:
                trace[f"blocks.{i}"] = h
        pooled = F.layer_norm(h, (h.shape[-1],), eps=1e-6).mean(dim=1)   # [B, D]
        if trace is not None:
            trace["pooled"] = pooled
        return self.head.fc2(F.gelu(self.head.fc1(pooled), approximate="tanh"))

    def probabilities(self, x, y):
        return torch.sigmoid(self.forward(x, y))


def greedy_plan(probs, cfg, threshold=None):
    """One plan string (F, C, R per step) from the K probabilities of one image."""
    threshold = cfg.threshold if threshold is None else threshold
    kinds = ["F"] * (cfg.rho_steps - 1) + ["C"]
    run = 0
    for p in (float(v) for v in probs):
        if p >= threshold or run >= cfg.max_reuse:
            kinds.append("C")
            run = 0
        else:
            kinds.append("R")
            run += 1
    return "".join(kinds)


def constrain(reuse, max_reuse):
    """Applies the max_reuse bound to sampled decisions (1 = Reuse) in step order; returns (decisions, forced) where
    forced marks the steps the bound turned into Cache (they are not the policy's choice: no log-probability)."""
    reuse = reuse.clone()
    forced = torch.zeros_like(reuse, dtype=torch.bool)
    run = torch.zeros(reuse.shape[0], dtype=torch.long)
    for j in range(reuse.shape[1]):
        at_bound = run >= max_reuse
        forced[:, j] = at_bound & (reuse[:, j] > 0)
        reuse[:, j] = torch.where(at_bound, torch.zeros_like(reuse[:, j]), reuse[:, j])
        run = torch.where(reuse[:, j] > 0, run + 1, torch.zeros_like(run))
    return reuse, forced


def save(net, path, extra=None):
    meta = net.cfg.metadata()
    meta.update(extra or {})
    tensors = {k: v.detach().float().contiguous() for k, v in net.state_dict().items()}
    safetensors_io.save_file(tensors, path, meta)


def load(path):
    state, meta = safetensors_io.load_file(path)
    net = AdaNet(AdaConfig.from_metadata(meta))
    missing = set(net.state_dict()) - set(state)
    extra = set(state) - set(net.state_dict())
    if missing or extra:
        raise ValueError(f"{path}: missing keys {sorted(missing)}, unexpected keys {sorted(extra)}")
    net.load_state_dict(state)
    return net.eval()


def cmd_random(a):
    cfg = AdaConfig(input_size=a.input_size, in_channels=a.channels, patch_size=a.patch, hidden_size=a.hidden,
                    depth=a.depth, num_heads=a.heads, num_classes=a.classes, steps=a.steps, rho_steps=a.rho_steps,
                    max_reuse=a.max_reuse, boundary=a.boundary, num_frames=a.frames)
    torch.manual_seed(a.seed)
    net = AdaNet(cfg)
    # random weights everywhere (an initialised network is the identity in its blocks and constant in its head,
    # which would prove nothing in a parity test)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name != "pos_embed":
                p.normal_(0.0, 0.3 if p.dim() > 1 else 0.1)
    save(net, a.out, {"purpose": "random weights for parity tests"})
    print(f"wrote {a.out}: {sum(p.numel() for p in net.parameters())} parameters, K = {cfg.outputs}")


def cmd_dump(a):
    net = load(a.weights)
    cfg = net.cfg
    g = torch.Generator().manual_seed(a.seed)
    frames = (cfg.num_frames,) if cfg.num_frames > 1 else ()
    if a.inputs:
        pool, _ = safetensors_io.load_file(a.inputs)
        x = pool["x_rho"][a.first:a.first + a.batch].float().contiguous()
        y = pool["labels"][a.first:a.first + a.batch].long()
        if len(y) != a.batch:
            raise SystemExit(f"{a.inputs} holds {len(pool['labels'])} starts; --first {a.first} --batch {a.batch} does not fit")
    else:
        x = torch.randn(a.batch, *frames, cfg.in_channels, cfg.input_size, cfg.input_size, generator=g)
        y = torch.randint(0, cfg.num_classes, (a.batch,), generator=g)
    trace = {}
    with torch.no_grad():
        logits = net(x, y, trace)
    probs = torch.sigmoid(logits)
    tensors = {"inputs.x": x, "inputs.y": y.to(torch.int64), "outputs.logits": logits, "outputs.probs": probs,
               "outputs.pooled": trace["pooled"]}
    tensors.update({f"outputs.{k}": v for k, v in trace.items() if k.startswith("blocks.")})
    plans = [greedy_plan(p, cfg) for p in probs]
    meta = {"format": "blockdance.dump/1", "model": MODEL_NAME, "weights": os.path.basename(a.weights),
            "plans": json.dumps(plans), "seed": str(a.seed)}
    if a.inputs:
        meta["inputs"] = f"{os.path.basename(a.inputs)} starts {a.first}…{a.first + a.batch - 1}"
    safetensors_io.save_file({k: v.contiguous() for k, v in tensors.items()}, a.out, meta)
    print(f"wrote {a.out}: batch {a.batch}, plans {plans}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("random")
    r.add_argument("--out", required=True)
    for name, default in (("depth", 2), ("hidden", 64), ("heads", 4), ("patch", 4), ("input-size", 32),
                          ("channels", 3), ("frames", 1), ("classes", 8), ("steps", 10), ("rho-steps", 4), ("max-reuse", 3),
                          ("boundary", 9), ("seed", 0)):
        r.add_argument(f"--{name}", type=int, default=default)
    d = sub.add_parser("dump")
    d.add_argument("--weights", required=True)
    d.add_argument("--out", required=True)
    d.add_argument("--batch", type=int, default=3)
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--inputs", help="a tools/ada_train.py pool file: take its x_rho and labels")
    d.add_argument("--first", type=int, default=0)
    a = ap.parse_args(argv)
    {"random": cmd_random, "dump": cmd_dump}[a.cmd](a)


if __name__ == "__main__":
    main()
