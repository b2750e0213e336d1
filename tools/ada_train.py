#!/usr/bin/python3
"""Trains BlockDance-Ada's decision network (tools/ada_net.py, the contract shared with the C# side) with REINFORCE on
the bundled image model or (--weights models/latte-shapes-video-32.safetensors) the bundled video model, and evaluates
its greedy plans.

Video. With the Latte model an item is a clip [F, C, H, W]: its stream [F·T, D] (frame-major) is what a Cache step
stores (the output of block boundary−1, Latte's blocks counted: round(20·24/28) = 17 of 24), the network reads the clip
with its frames stacked as channels, Q is the SSIM averaged over the frames, guidance is Latte's forward_with_cfg (its
literal 4 channels), and `check` compares the batched per-clip rollout with latte_reference, clip by clip (about 20
minutes: the reference runs op by op). The evaluation's classifier is the motion-aware tools/latte_clip_classifier.py.

Environment. models/dit-shapes-32.safetensors sampled as `./blockdance generate` does by default: the original DiT
DDIM (timestep spacing "fractional", eta 0) over 50 steps, classifier-free guidance 4 on a [cond…, uncond…] batch
(dit_reference.sample). BlockDance semantics (docs/caching.md): a Cache step runs every block and stores the output of
block boundary−1 for both guidance halves; a Reuse step skips the patch embedding and blocks 0 … boundary−1 and starts
block `boundary` from the stored tensor with this step's conditioning; boundary = round(20·depth/28) = 9 for depth 12
(CachePolicy.BoundaryFor). Steps 0 … ρ·S−2 are Full, step ρ·S−1 is Cache (ρ·S = 20 of 50); the network reads the
latent after those 20 steps and its class and decides the K = 30 remaining steps (greedy_plan / constrain). The batched
rollout gives every image its own plan: each step runs the shallow blocks only on the items that compute, takes the
stored feature for the items that reuse, and runs the deep blocks on all (every op works per item, so an image's result
does not depend on its neighbours' plans). `check` proves it: an all-Full rollout equals dit_reference.sample of the
same noise, and a batch of mixed plans (BlockDance N=2, N=3, a random plan) equals a one-image-at-a-time loop written
with dit_reference's op-by-op DiT.

Pool. Starts (noise seed, class) are drawn once: noise [N, 3, 32, 32] from torch.Generator(pool seed), class i mod 8.
For each start the pool stores the latent after ρ·S steps, the feature stored at step ρ·S−1 (both guidance halves), and
the uncached final sample. Training uses --pool-seed, evaluation a held-out pool (--eval-seed); cached in --work.

Reward. R(u) = C(u) + λ·Q(u), λ = --lam (default 6; the paper's 2 is for its ImageReward scale: with SSIM, λ = 2 and
3 made every image's greedy plan the same maximal-reuse plan, see models/README.md). C = fraction of Reuse steps among the K decided steps (after the max_reuse
bound). Q = SSIM of the sample against the uncached sample of the same start (Gaussian σ = 1.5, 11 taps, data range 2,
images clamped to [−1, 1]: the project's SSIM, tools/ssim_reference.py / ImageMetrics.cs; `check` compares this torch
version with scikit-image). Why SSIM and not the classifier: caching should leave the sample as the model would have
made it, which SSIM to the uncached sample measures densely for every image; the classifier's probability of the
intended class is nearly flat under caching (the class is settled by step 20: quality.md shows BlockDance N=2…4 with the
same or higher accuracy than no cache) and would reward any drift that keeps the class. The classifier is reported in
`evaluate` as a diagnostic.

Policy gradient. Per update: --starts distinct pool starts, --samples plans sampled for each (Bernoulli per step with
p = P(Cache)), then `constrain` (max_reuse consecutive Reuse steps; the forced Cache steps are not the policy's choice
and carry no log-probability). Baseline: the leave-one-out mean reward of the other samples of the same start (the
spread of Q between starts is much larger than between plans of one start, so a per-start baseline removes most of the
variance); loss = −mean(A·log π(u)) − β·mean entropy (β = --entropy, per decided step). Adam, lr --lr constant after a
short warm-up, gradient clipping --clip. Seeded: the starts and the Bernoulli draws of update n come from a generator
seeded by (seed, n), so `--resume` continues exactly. Checkpoints every --ckpt-minutes and at the end; --max-minutes
stops (checkpointed) after that long.

Command line:
  every command takes --weights (default the image model; models/latte-shapes-video-32.safetensors: the video model)
  /usr/bin/python3 tools/ada_train.py check [--threads 1]
  /usr/bin/python3 tools/ada_train.py bench [--starts 8 --samples 3]       per-update cost
  /usr/bin/python3 tools/ada_train.py train [--updates 260] [--starts 8 --samples 3] [--lr 1e-3] [--lam 6]
      [--entropy 0.05] [--adaln-init-std 0.02 --head-init-std 0.02] [--head-init-bias B] [--max-reuse 3] [--depth 3 --hidden 64] [--pool 96 --pool-seed 1] [--seed 0] [--threads 1]
      [--work .cache/ada-<model>] [--resume] [--max-minutes M] [--ckpt-minutes 3]
  /usr/bin/python3 tools/ada_train.py export [--out models/ada-<model>.safetensors]   weights + curves CSV/PNG
      (<model>: dit-shapes-32 or latte-shapes-video-32, the --weights file's stem)
  /usr/bin/python3 tools/ada_train.py evaluate [--ada W] [--eval-pool 48 --eval-seed 2] [--out R.json]   greedy plans
      of the network vs BlockDance N = 2, 3, 4 on held-out starts
"""

import argparse
import csv
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ada_net  # noqa: E402
import dit_reference as ref  # noqa: E402
import latte_reference  # noqa: E402
import safetensors_io  # noqa: E402
import latte_clip_classifier  # noqa: E402
import shapes_classifier  # noqa: E402
import shapes_data  # noqa: E402
import torch_fast_dit  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(REPO, "models", "dit-shapes-32.safetensors")
FULL, CACHE, REUSE = 0, 1, 2
LETTER = "FCR"


# ----------------------------------------------------------------------------------------------------------------
# Environment: the DiT sampled with per-image plans
# ----------------------------------------------------------------------------------------------------------------

class _DitRunner:
    """The image DiT as the environment drives it: items are images, tokens [B, T, D]."""

    frames = 1

    def __init__(self, weights):
        self.model = ref.load_dit(weights)
        self.fast = torch_fast_dit.FastDiT(self.model)
        self.cfg = self.model.cfg
        self.cfg_channels = ref.NUMERICS["original"]["cfg_channels"]

    def embed(self, x):
        return self.fast.embed(x)

    def condition(self, t, y):
        return self.fast.condition(t, y)

    def blocks(self, h, sc, start, stop):
        for i in range(start, stop):
            h = self.fast.block(h, sc, i)
        return h

    def final(self, h, sc, gh, gw):
        return self.fast.final(h, sc, gh, gw)


class _LatteRunner(torch_fast_dit.FastLatte):
    """The video Latte: items are clips [F, C, H, W], tokens [B, F·T, D]; guidance on Latte's literal 4 channels."""

    def __init__(self, weights):
        super().__init__(weights)
        self.cfg_channels = latte_reference.GUIDED_CHANNELS


def is_video(weights):
    return "temp_embed" in safetensors_io.load_file(weights)[0]


class Env:
    """The bundled model (the image DiT, or the video Latte: then an item is a clip of F frames), the original DDIM
    sampler with guidance, and BlockDance's Cache/Reuse steps per item."""

    def __init__(self, weights=WEIGHTS, steps=50, guidance=4.0, rho=0.4, boundary=None):
        self.video = is_video(weights)
        self.run = _LatteRunner(weights) if self.video else _DitRunner(weights)
        self.weights = weights
        cfg = self.run.cfg
        self.cfg = cfg
        self.frames = self.run.frames
        self.steps, self.guidance = steps, guidance
        self.rho_steps = int(math.floor(rho * steps + 1e-9))
        self.boundary = boundary if boundary is not None else round(20 * cfg.depth / 28)   # CachePolicy.BoundaryFor
        self.diff = ref.SpacedDiffusion(steps, learn_sigma=cfg.learn_sigma)
        self.null = cfg.num_classes
        self.cfg_channels = self.run.cfg_channels
        self.grid = cfg.input_size // cfg.patch_size

    @property
    def item_shape(self):
        """One sample: [C, H, W], or [F, C, H, W] for a clip."""
        c = self.cfg
        return ((self.frames,) if self.video else ()) + (c.in_channels, c.input_size, c.input_size)

    @property
    def item_tokens(self):
        """Rows of one item's stream: T, or F·T for a clip."""
        return self.frames * self.grid * self.grid

    def step(self, x, y, s, kinds, feat):
        """Sampling step s for items x [n, *item_shape], labels y [n], kinds [n] (FULL/CACHE/REUSE), the stored
        feature feat [2n, R, D] (or None). Returns (x after the step, the stored feature after it)."""
        n = x.shape[0]
        k = self.diff.num_steps - 1 - s
        run = self.run
        x2, y2, kinds2 = torch.cat([x, x]), torch.cat([y, torch.full_like(y, self.null)]), torch.cat([kinds, kinds])
        sc = run.condition(torch.full((2 * n,), self.diff.timestep_map[k], dtype=torch.int64), y2)
        comp = (kinds2 != REUSE).nonzero().flatten()
        reuse = (kinds2 == REUSE).nonzero().flatten()
        if len(reuse) and feat is None:
            raise ValueError(f"step {s}: a Reuse step without a stored feature")
        h = torch.empty(2 * n, self.item_tokens, self.cfg.hidden_size)
        if len(comp):
            h[comp] = run.blocks(run.embed(x2[comp]), sc[comp], 0, self.boundary)
        if len(reuse):
            h[reuse] = feat[reuse]
        store = (kinds2 == CACHE).nonzero().flatten()
        if len(store):
            feat = torch.zeros(2 * n, self.item_tokens, self.cfg.hidden_size) if feat is None else feat.clone()
            feat[store] = h[store]
        h = run.blocks(h, sc, self.boundary, self.cfg.depth)
        out = run.final(h, sc, self.grid, self.grid)                # [2n, (F,) C', H, W]
        ch = 2 if self.video else 1                                 # the channel axis
        g = self.cfg_channels
        eps, rest = out.narrow(ch, 0, g), out.narrow(ch, g, out.shape[ch] - g)
        guided = eps[n:] + self.guidance * (eps[:n] - eps[n:])
        out = torch.cat([torch.cat([guided, guided]), rest], dim=ch)
        C, H, W = self.cfg.in_channels, self.cfg.input_size, self.cfg.input_size
        rows = 2 * n * self.frames                                  # DDIM is per element: frames as rows
        x2 = self.diff.ddim_step(out.reshape(rows, -1, H, W), x2.reshape(rows, C, H, W), k,
                                 torch.zeros(rows, C, H, W), 0.0).reshape(x2.shape)
        return x2[:n], feat

    @torch.inference_mode()
    def rollout(self, x, y, kinds, s0=0, feat=None):
        """Steps s0 … s0 + L − 1 with kinds [n, L] (L = S − s0 for a whole run). Returns (x, the stored feature)."""
        for j in range(kinds.shape[1]):
            x, feat = self.step(x, y, s0 + j, kinds[:, j], feat)
        return x, feat

    def prefix_kinds(self, n):
        """Steps 0 … ρ·S−1: Full, then Cache at ρ·S−1."""
        kinds = torch.full((n, self.rho_steps), FULL, dtype=torch.long)
        kinds[:, -1] = CACHE
        return kinds

    def macs(self):
        """(MACs of a full forward, of a Reuse forward) for one sample (image or clip), counted as src/Dit/MacCount.cs
        does: a Latte spatial block is F blocks over T tokens, a temporal block T blocks over F frames."""
        c = self.cfg
        D, T, p, F_ = c.hidden_size, self.grid * self.grid, c.patch_size, self.frames

        def block(n):
            return 6 * D * D + 3 * n * D * D + 2 * n * n * D + n * D * D + 2 * n * D * (4 * D)

        def block_at(i):
            return T * block(F_) if self.video and i % 2 == 1 else F_ * block(T)

        patch, cond = F_ * T * c.in_channels * p * p * D, ref.FREQ_DIM * D + D * D
        final = F_ * (2 * D * D + T * D * p * p * c.out_channels)
        blocks = [block_at(i) for i in range(c.depth)]
        return patch + cond + sum(blocks) + final, cond + sum(blocks[self.boundary:]) + final

    def saved_fraction(self, reuse_steps):
        """Fraction of the run's MACs saved by `reuse_steps` Reuse steps of S."""
        full, reuse = self.macs()
        return reuse_steps * (full - reuse) / (self.steps * full)


def static_plan(steps, n, start=0.4, end=0.95):
    """BlockDance-N's plan (CachePolicy: window [ceil(a·S), floor(b·S)), (k − ceil(a·S)) mod N == 0 Cache, else Reuse)."""
    a, b = math.ceil(start * steps - 1e-9), math.floor(end * steps + 1e-9)
    return "".join("F" if not a <= k < b else ("C" if (k - a) % n == 0 else "R") for k in range(steps))


def kinds_of(plans):
    return torch.tensor([[LETTER.index(ch) for ch in p] for p in plans], dtype=torch.long)


def plan_strings(env, reuse):
    """Full plan strings from the decided steps' reuse flags [n, K]."""
    head = "F" * (env.rho_steps - 1) + "C"
    return [head + "".join("R" if r else "C" for r in row.tolist()) for row in reuse]


# ----------------------------------------------------------------------------------------------------------------
# Quality: SSIM (the project's definition) and the classifier
# ----------------------------------------------------------------------------------------------------------------

def _gauss_kernel(sigma=1.5, radius=5):
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _filter(x, k):
    """Separable Gaussian filter on [N, C, H, W] with scipy's 'reflect' border (d c b a | a b c d)."""
    r = (len(k) - 1) // 2
    n, c, h, w = x.shape
    x = torch.cat([x[..., :r].flip(-1), x, x[..., -r:].flip(-1)], dim=-1)
    x = torch.cat([x[..., :r, :].flip(-2), x, x[..., -r:, :].flip(-2)], dim=-2)
    x = x.reshape(n * c, 1, h + 2 * r, w + 2 * r)
    x = F.conv2d(x, k.reshape(1, 1, 1, -1))
    x = F.conv2d(x, k.reshape(1, 1, -1, 1))
    return x.reshape(n, c, h, w)


def ssim(a, b, data_range=2.0):
    """Mean SSIM per image of a, b [N, C, H, W] (float64 internally), as skimage's structural_similarity with
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=0; images clamped to [−1, 1] first."""
    a, b = a.double().clamp(-1, 1), b.double().clamp(-1, 1)
    k = _gauss_kernel()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ux, uy = _filter(a, k), _filter(b, k)
    vx, vy, vxy = _filter(a * a, k) - ux * ux, _filter(b * b, k) - uy * uy, _filter(a * b, k) - ux * uy
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    r = 5
    return s[..., r:-r, r:-r].mean(dim=(1, 2, 3)).float()


def item_ssim(a, b):
    """SSIM per item of a, b [N, C, H, W] or clips [N, F, C, H, W] (the mean over the frames, each frame an image, as
    bench/quality.py counts clips)."""
    if a.dim() == 4:
        return ssim(a, b)
    n, f = a.shape[:2]
    return ssim(a.reshape(n * f, *a.shape[2:]), b.reshape(n * f, *b.shape[2:])).reshape(n, f).mean(dim=1)


class Judge:
    """The bundled classifier of the model's samples (images: models/shapes-classifier; clips: the motion-aware
    models/latte-clip-classifier): logits of each item."""

    def __init__(self, video=False):
        self.video = video
        self.model = latte_clip_classifier.load() if video else shapes_classifier.load_classifier()[0]

    @torch.inference_mode()
    def logits(self, items):
        if self.video:
            return self.model(items.float().clamp(-1, 1))
        return shapes_classifier.features_and_logits(self.model, items)[1]

    def prob(self, items, labels):
        return torch.softmax(self.logits(items), dim=1)[torch.arange(len(labels)), labels]

    @property
    def class_names(self):
        return latte_clip_classifier.clips_data.CLASS_NAMES if self.video else shapes_data.CLASS_NAMES


# ----------------------------------------------------------------------------------------------------------------
# Pool of starts
# ----------------------------------------------------------------------------------------------------------------

def load_pool(env, seed, n, work, chunk=32, log=print):
    """x_rho [n, *item], feat [n, 2, R, D] (cond, uncond), final [n, *item] uncached, labels [n]; cached in work (item:
    [C, H, W], or [F, C, H, W] for a clip; R = T, or F·T)."""
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, f"pool-s{seed}-n{n}-S{env.steps}-r{env.rho_steps}-b{env.boundary}"
                              f"-g{env.guidance:g}.safetensors")
    if os.path.exists(path):
        t, _ = safetensors_io.load_file(path)
        return t
    g = torch.Generator().manual_seed(seed)
    c = env.cfg
    noise = torch.randn(n, *env.item_shape, generator=g)
    labels = torch.arange(n, dtype=torch.int64) % c.num_classes
    parts = {"x_rho": [], "feat": [], "final": []}
    t0 = time.time()
    for i in range(0, n, chunk):
        x, y = noise[i:i + chunk], labels[i:i + chunk]
        m = len(y)
        x_rho, feat = env.rollout(x, y, env.prefix_kinds(m))
        final, _ = env.rollout(x_rho, y, torch.full((m, env.steps - env.rho_steps), FULL, dtype=torch.long),
                               s0=env.rho_steps, feat=feat)
        parts["x_rho"].append(x_rho)
        parts["feat"].append(torch.stack([feat[:m], feat[m:]], dim=1))
        parts["final"].append(final)
        log(f"  pool seed {seed}: {i + m}/{n} starts, {time.time() - t0:.0f} s")
    t = {k: torch.cat(v).contiguous() for k, v in parts.items()}
    t["labels"], t["noise"] = labels, noise
    safetensors_io.save_file(t, path + ".tmp", {"seed": str(seed), "steps": str(env.steps),
                                                 "rho_steps": str(env.rho_steps), "boundary": str(env.boundary),
                                                 "guidance": repr(env.guidance)})
    os.replace(path + ".tmp", path)
    return safetensors_io.load_file(path)[0]


def pool_feat(pool, idx):
    f = pool["feat"][idx]
    return torch.cat([f[:, 0], f[:, 1]])


# ----------------------------------------------------------------------------------------------------------------
# Check: the rollout against dit_reference
# ----------------------------------------------------------------------------------------------------------------

def slow_sample(model, noise, y, plan, boundary, guidance, steps):
    """One image at a time, dit_reference's op-by-op DiT, the plan's letters executed literally."""
    diff = ref.SpacedDiffusion(steps, learn_sigma=model.cfg.learn_sigma)
    p, g = model.cfg.patch_size, noise.shape[-1] // model.cfg.patch_size
    x = torch.cat([noise, noise])
    yy = torch.tensor([int(y), model.cfg.num_classes])
    stored = None
    for s, k in enumerate(reversed(range(diff.num_steps))):
        c = model.condition(torch.full((2,), diff.timestep_map[k], dtype=torch.int64), yy, model.emb[0])
        if plan[s] == "R":
            h = stored
        else:
            h = ref.linear(ref.patchify(x, p), model.patch_w, model.w["x_embedder.proj.bias"]) + model.pos_embed(g, g)
            for i in range(boundary):
                h = model.block(h, c, i)
            if plan[s] == "C":
                stored = h
        for i in range(boundary, model.cfg.depth):
            h = model.block(h, c, i)
        ada_w, ada_b, lin_w, lin_b = model.final_weights()
        shift, scale = ref.linear(ref.silu(c), ada_w, ada_b).chunk(2, dim=1)
        h = ref.linear(ref.modulate(ref.layer_norm(h, 1e-6), shift, scale), lin_w, lin_b)
        out = ref.unpatchify(h, p, model.cfg.out_channels, g, g)
        e = out[:, :3]
        ge = e[1:] + guidance * (e[:1] - e[1:])
        out = torch.cat([torch.cat([ge, ge]), out[:, 3:]], dim=1)
        x = diff.ddim_step(out, x, k, torch.zeros_like(x), 0.0)
        x = torch.cat([x[:1], x[:1]])
    return x[:1]


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def slow_sample_latte(model, noise, y, plan, boundary, guidance, steps):
    """One clip at a time, latte_reference's op-by-op Latte (its forward's boundary/feature arguments are the Cache and
    Reuse steps), the plan's letters executed literally; guidance as its forward_with_cfg."""
    diff = ref.SpacedDiffusion(steps, learn_sigma=model.cfg.learn_sigma)
    _, F_, C, H, W = noise.shape
    x = torch.cat([noise, noise])
    yy = torch.tensor([int(y), model.cfg.num_classes])
    g = latte_reference.GUIDED_CHANNELS
    stored = None
    for s, k in enumerate(reversed(range(diff.num_steps))):
        t = torch.full((2,), float(diff.timestep_map[k]))
        if plan[s] == "R":
            out = model.forward(x, t, yy, boundary=boundary, feature=stored)
        elif plan[s] == "C":
            out, stored = model.forward(x, t, yy, boundary=boundary)
        else:
            out = model.forward(x, t, yy)
        eps, rest = out[:, :, :g], out[:, :, g:]
        ge = eps[1:] + guidance * (eps[:1] - eps[1:])
        out = torch.cat([torch.cat([ge, ge]), rest], dim=2)
        x = diff.ddim_step(out.reshape(2 * F_, -1, H, W), x.reshape(2 * F_, C, H, W), k,
                           torch.zeros(2 * F_, C, H, W), 0.0).reshape(x.shape)
        x = torch.cat([x[:1], x[:1]])
    return x[:1]


def cmd_check(args):
    torch.set_num_threads(args.threads)
    env = Env(args.weights)
    S, ok = env.steps, True
    print(f"{'video (Latte, %d frames)' % env.frames if env.video else 'image DiT'}: boundary {env.boundary}, "
          f"rho_steps {env.rho_steps}, K {S - env.rho_steps}")
    g = torch.Generator().manual_seed(7)
    noise = torch.randn(3, *env.item_shape, generator=g)
    y = torch.tensor([1, 4, 6]) % env.cfg.num_classes
    with torch.inference_mode():
        if env.video:
            model = latte_reference.load_latte(args.weights)
            want = latte_reference.sample(model, noise, y, S, cfg_scale=env.guidance, sampler="ddim")
        else:
            model = env.run.model
            want = ref.sample(model, noise, y, S, cfg_scale=env.guidance, sampler="ddim")
    got, _ = env.rollout(noise, y, torch.full((3, S), FULL, dtype=torch.long))
    r = rel(got, want)
    ok &= r < 1e-4
    print(f"{'ok  ' if r < 1e-4 else 'FAIL'} all-Full rollout vs {'latte' if env.video else 'dit'}_reference.sample: "
          f"max rel diff {r:.2e}")
    rnd = torch.Generator().manual_seed(3)
    random_plan = static_plan(S, 1)[:env.rho_steps - 1] + "C" + "".join(
        "R" if v else "C" for v in ada_net.constrain((torch.rand(1, S - env.rho_steps, generator=rnd) < 0.6).long(),
                                                      3)[0][0].tolist())
    plans = [static_plan(S, 2), static_plan(S, 3), random_plan]
    got, _ = env.rollout(noise, y, kinds_of(plans))
    slow = slow_sample_latte if env.video else slow_sample
    for i, plan in enumerate(plans):
        with torch.inference_mode():
            want = slow(model, noise[i:i + 1], y[i], plan, env.boundary, env.guidance, S)
        r = rel(got[i:i + 1], want)
        ok &= r < 1e-4
        print(f"{'ok  ' if r < 1e-4 else 'FAIL'} mixed-plan batch, item {i} ({plan}) vs one-item op-by-op loop: "
              f"max rel diff {r:.2e}")
    # prefix + decided steps (the pool's path) = one rollout of the whole plan
    x_rho, feat = env.rollout(noise, y, env.prefix_kinds(3))
    tail, _ = env.rollout(x_rho, y, kinds_of(plans)[:, env.rho_steps:], s0=env.rho_steps, feat=feat)
    r = rel(tail, got)
    ok &= r < 1e-5
    print(f"{'ok  ' if r < 1e-5 else 'FAIL'} prefix to step rho then the decided steps = the whole plan: {r:.2e}")
    # SSIM against scikit-image
    from skimage.metrics import structural_similarity
    a = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
    b = (a + 0.3 * torch.randn(4, 3, 32, 32, generator=g)).clamp(-1, 1)
    mine = ssim(a, b)
    sk = torch.tensor([structural_similarity(a[i].double().numpy(), b[i].double().numpy(), gaussian_weights=True,
                                             sigma=1.5, use_sample_covariance=False, data_range=2.0,
                                             channel_axis=0) for i in range(4)])
    d = (mine.double() - sk).abs().max().item()
    ok &= d < 1e-5
    print(f"{'ok  ' if d < 1e-5 else 'FAIL'} SSIM vs scikit-image: max abs diff {d:.2e} (values {sk.numpy().round(4)})")
    # MACs: BlockDance-2 saves 19.4 % on the image model, 18.4 % on the video model (bench/results/quality.md and
    # quality-video.md, from the C# MacCount)
    f2, want2 = env.saved_fraction(static_plan(S, 2).count("R")), (0.184 if env.video else 0.194)
    ok &= abs(f2 - want2) < 0.0005
    print(f"{'ok  ' if abs(f2 - want2) < 0.0005 else 'FAIL'} BlockDance-2 saves {100 * f2:.2f} % of the MACs "
          f"(C# report: {100 * want2:.1f} %)")
    # greedy plans of ada_net obey the bound and start with the prefix
    plan = ada_net.greedy_plan(torch.zeros(S - env.rho_steps), ada_net.AdaConfig(rho_steps=env.rho_steps))
    ok &= plan == "F" * 19 + "C" + "RRRC" * 7 + "RR"
    print(f"{'ok  ' if plan == 'F' * 19 + 'C' + 'RRRC' * 7 + 'RR' else 'FAIL'} greedy plan of p = 0: {plan}")
    print("all checks passed" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


# ----------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------

def make_net(args, env):
    cfg = ada_net.AdaConfig(input_size=env.cfg.input_size, in_channels=env.cfg.in_channels, patch_size=args.patch,
                            hidden_size=args.hidden, depth=args.depth, num_heads=args.heads,
                            num_classes=env.cfg.num_classes, steps=env.steps, rho_steps=env.rho_steps,
                            max_reuse=args.max_reuse, boundary=env.boundary, threshold=0.5,
                            base_model=model_stem(env.weights), sampler="ddim", guidance=env.guidance,
                            num_frames=env.frames)
    net = ada_net.AdaNet(cfg)
    # Optional departures from the contract's default initialisation (ada_net.AdaNet._init), for training only: with
    # adaLN-Zero the label reaches the pooled features only once the modulation has grown, and with a zero fc2 the
    # head's first layer gets no gradient until fc2 has grown, so the per-step bias (a plan shared by every image)
    # is what a short run learns first. A small normal init lets the label and the image shape the logits at once.
    with torch.no_grad():
        if getattr(args, "adaln_init_std", 0.0) > 0:
            for b in net.blocks:
                nn.init.normal_(b.adaLN_modulation[-1].weight, std=args.adaln_init_std)
        if getattr(args, "head_init_std", 0.0) > 0:
            nn.init.normal_(net.head.fc2.weight, std=args.head_init_std)
        if getattr(args, "head_init_bias", None) is not None:
            nn.init.constant_(net.head.fc2.bias, args.head_init_bias)
    return net


def model_stem(weights):
    """'dit-shapes-32' for models/dit-shapes-32.safetensors."""
    return os.path.splitext(os.path.basename(weights))[0]


def step_generator(seed, n):
    return torch.Generator().manual_seed(seed * 1_000_003 + n)


def episode(env, net, pool, idx, samples, max_reuse, g, lam):
    """Samples `samples` plans per start of idx, rolls them out; returns a dict of per-rollout tensors."""
    B = len(idx)
    logits = net(pool["x_rho"][idx], pool["labels"][idx])                    # [B, K]
    logits = logits.repeat_interleave(samples, dim=0)                        # [B·M, K]
    p = torch.sigmoid(logits.detach())
    cache = torch.bernoulli(p, generator=g)
    reuse, forced = ada_net.constrain((1 - cache).long(), max_reuse)
    chosen = ~forced
    logp = torch.where(cache > 0, F.logsigmoid(logits), F.logsigmoid(-logits))
    logp = (logp * chosen).sum(dim=1)
    ent = -(torch.sigmoid(logits) * F.logsigmoid(logits) + torch.sigmoid(-logits) * F.logsigmoid(-logits)).mean(dim=1)
    rep = idx.repeat_interleave(samples)
    kinds = torch.where(reuse > 0, REUSE, CACHE)
    final, _ = env.rollout(pool["x_rho"][rep], pool["labels"][rep], kinds, s0=env.rho_steps, feat=pool_feat(pool, rep))
    C = reuse.float().mean(dim=1)
    Q = item_ssim(final, pool["final"][rep])
    return {"logp": logp, "entropy": ent, "C": C, "Q": Q, "R": C + lam * Q, "reuse": reuse, "B": B}


def baseline(R, samples):
    """Leave-one-out mean of the other samples of the same start (the batch mean when samples = 1)."""
    if samples == 1:
        return R.mean().expand_as(R)
    r = R.reshape(-1, samples)
    return ((r.sum(dim=1, keepdim=True) - r) / (samples - 1)).reshape(-1)


def greedy_stats(env, net, pool):
    """Greedy plans of the pool (no rollout): mean reuse fraction, number of distinct plans, and the spread of p
    between the images (standard deviation over the pool, averaged over the K steps)."""
    with torch.no_grad():
        probs = net.probabilities(pool["x_rho"], pool["labels"])
    plans = [ada_net.greedy_plan(p, net.cfg) for p in probs]
    K = env.steps - env.rho_steps
    return (float(np.mean([p[env.rho_steps:].count("R") / K for p in plans])), len(set(plans)),
            float(probs.std(dim=0).mean()))


def hparams_of(args):
    return {k: v for k, v in vars(args).items() if k not in ("cmd", "resume", "work", "threads", "max_minutes",
                                                            "ckpt_minutes", "weights")}


def cmd_train(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    env = Env(args.weights)
    net = make_net(args, env)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    ckpt = os.path.join(args.work, "checkpoint.pt")
    hp = hparams_of(args)
    update, log, elapsed_before = 0, [], 0.0
    if args.resume and os.path.exists(ckpt):
        st = torch.load(ckpt)
        if st["hparams"] != hp:
            raise SystemExit(f"--resume: the checkpoint's settings {st['hparams']} differ from {hp}")
        net.load_state_dict(st["net"])
        opt.load_state_dict(st["opt"])
        update, log, elapsed_before = st["update"], st["log"], st["elapsed_s"]
        print(f"resumed from {ckpt} at update {update}", flush=True)
    elif os.path.exists(ckpt):
        raise SystemExit(f"{ckpt} exists: pass --resume to continue it or remove it to start over")
    pool = load_pool(env, args.pool_seed, args.pool, args.work, log=lambda m: print(m, flush=True))
    val = load_pool(env, args.eval_seed, args.eval_pool, args.work, log=lambda m: print(m, flush=True))
    print(f"AdaNet depth {args.depth} hidden {args.hidden} ({sum(p.numel() for p in net.parameters())} parameters), "
          f"K {net.cfg.outputs}, pool {args.pool}, {args.starts}x{args.samples} rollouts per update, lr {args.lr}, "
          f"lambda {args.lam}, entropy {args.entropy}, max_reuse {args.max_reuse}", flush=True)

    def save(elapsed):
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "update": update, "log": log,
                    "elapsed_s": elapsed, "hparams": hp, "config": net.cfg.metadata()}, ckpt + ".tmp")
        os.replace(ckpt + ".tmp", ckpt)

    t_start = time.time()
    last_ckpt = t_start
    while update < args.updates:
        g = step_generator(args.seed, update)
        idx = torch.randperm(args.pool, generator=g)[:args.starts]
        for group in opt.param_groups:
            group["lr"] = args.lr * min(1.0, (update + 1) / max(1, args.warmup))
        ep = episode(env, net, pool, idx, args.samples, args.max_reuse, g, args.lam)
        adv = ep["R"] - baseline(ep["R"], args.samples)
        loss = -(adv * ep["logp"]).mean() - args.entropy * ep["entropy"].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(net.parameters(), args.clip) if args.clip > 0 else torch.tensor(0.0)
        opt.step()
        update += 1
        now = time.time()
        elapsed = elapsed_before + now - t_start
        net.eval()
        greedy_reuse, distinct, p_spread = greedy_stats(env, net, val)
        net.train()
        reuse_steps = ep["reuse"].sum(dim=1).float()
        row = {"update": update, "reward": ep["R"].mean().item(), "C": ep["C"].mean().item(),
               "Q": ep["Q"].mean().item(), "macs_saved": env.saved_fraction(reuse_steps.mean().item()),
               "entropy": ep["entropy"].mean().item(), "grad_norm": float(gnorm),
               "greedy_reuse_heldout": greedy_reuse, "greedy_distinct_heldout": distinct,
               "p_spread_heldout": p_spread, "elapsed_s": round(elapsed, 1)}
        log.append(row)
        if update % args.log_every == 0 or update == args.updates:
            print(f"update {update} R {row['reward']:.4f} C {row['C']:.3f} Q {row['Q']:.4f} "
                  f"saved {100 * row['macs_saved']:.1f}% H {row['entropy']:.3f} |g| {row['grad_norm']:.3f} "
                  f"greedy: reuse {greedy_reuse:.3f}, {distinct} plans/{args.eval_pool}, p spread {p_spread:.4f} "
                  f"{elapsed / 60:.1f} min ({elapsed / update:.1f} s/update)", flush=True)
        if now - last_ckpt > args.ckpt_minutes * 60 or update == args.updates:
            save(elapsed)
            last_ckpt = now
        if args.max_minutes and now - t_start > args.max_minutes * 60:
            save(elapsed)
            print(f"stopping after {args.max_minutes} min at update {update} (resume with --resume)", flush=True)
            return 3
    print(f"done: {update} updates in {(elapsed_before + time.time() - t_start) / 60:.1f} min", flush=True)
    return 0


def cmd_bench(args):
    torch.set_num_threads(args.threads)
    env = Env(args.weights)
    net = make_net(args, env)
    pool = load_pool(env, 99, args.starts, args.work, log=lambda m: print(m, flush=True))
    g = torch.Generator().manual_seed(0)
    for i in range(2):
        t0 = time.perf_counter()
        ep = episode(env, net, pool, torch.arange(args.starts), args.samples, args.max_reuse, g, args.lam)
        (-(ep["logp"] * ep["R"]).mean()).backward()
        dt = time.perf_counter() - t0
        print(json.dumps({"rollouts": args.starts * args.samples, "update_s": round(dt, 2),
                          "per_rollout_s": round(dt / (args.starts * args.samples), 3),
                          "mean_C": round(ep["C"].mean().item(), 3), "threads": args.threads}), flush=True)
    return 0


# ----------------------------------------------------------------------------------------------------------------
# Export and evaluation
# ----------------------------------------------------------------------------------------------------------------

CURVE_KEYS = ["update", "reward", "C", "Q", "macs_saved", "entropy", "grad_norm", "greedy_reuse_heldout",
              "greedy_distinct_heldout", "p_spread_heldout", "elapsed_s"]


def write_curves(log, csv_path, png_path, smooth=10):
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CURVE_KEYS)
        w.writeheader()
        for r in log:
            w.writerow({k: (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]) for k in CURVE_KEYS})
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    u = np.array([r["update"] for r in log])
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, key, title in zip(axes, ("reward", "C", "Q", "macs_saved"),
                              ("reward R = C + λ·Q", "C: reuse fraction of the K steps", "Q: SSIM vs uncached",
                               "MACs saved (fraction of the run)")):
        v = np.array([r[key] for r in log])
        ax.plot(u, v, lw=0.6, alpha=0.4, label="per update (sampled plans)")
        if len(v) >= smooth:
            lo = (smooth - 1) // 2
            ax.plot(u[lo:lo + len(v) - smooth + 1], np.convolve(v, np.ones(smooth) / smooth, mode="valid"), lw=1.5,
                    label=f"{smooth}-update mean")
        if key == "C":
            ax.plot(u, [r["greedy_reuse_heldout"] for r in log], lw=1.2, label="greedy, held-out starts")
        ax.set_title(title)
        ax.set_xlabel("update")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def cmd_export(args):
    st = torch.load(os.path.join(args.work, "checkpoint.pt"))
    cfg = ada_net.AdaConfig.from_metadata(st["config"])
    net = ada_net.AdaNet(cfg)
    net.load_state_dict(st["net"])
    hp, last = st["hparams"], st["log"][-1]
    tail = st["log"][-20:]
    mean = lambda k: float(np.mean([r[k] for r in tail]))  # noqa: E731
    extra = {"trained_by": "tools/ada_train.py", "train_updates": str(st["update"]),
             "train_rollouts": str(st["update"] * hp["starts"] * hp["samples"]),
             "train_minutes": f"{st['elapsed_s'] / 60:.1f}", "train_seed": str(hp["seed"]), "train_lr": repr(hp["lr"]),
             "train_lambda": repr(hp["lam"]), "train_entropy": repr(hp["entropy"]),
             "train_adaln_init_std": repr(hp.get("adaln_init_std", 0.0)),
             "train_head_init_std": repr(hp.get("head_init_std", 0.0)),
             "train_head_init_bias": repr(hp.get("head_init_bias")),
             "train_starts_per_update": str(hp["starts"]), "train_samples_per_start": str(hp["samples"]),
             "pool": f"{hp['pool']} starts, seed {hp['pool_seed']}",
             "quality_reward": "SSIM (Gaussian sigma 1.5, data range 2, clamped to [-1,1]) against the uncached "
                               "sample of the same start" + (", the mean over the clip's frames" if cfg.num_frames > 1 else ""),
             "baseline": "leave-one-out mean of the other samples of the same start",
             "final_reward_last20": f"{mean('reward'):.4f}", "final_C_last20": f"{mean('C'):.4f}",
             "final_Q_last20": f"{mean('Q'):.4f}", "final_macs_saved_last20": f"{mean('macs_saved'):.4f}",
             "last_update": json.dumps(last)}
    ada_net.save(net, args.out, extra)
    base = os.path.splitext(args.out)[0]
    write_curves(st["log"], base + "-curves.csv", base + "-curves.png")
    print(f"wrote {args.out} ({sum(p.numel() for p in net.parameters())} parameters), {base}-curves.csv/.png")
    back = ada_net.load(args.out)
    x = torch.randn(2, *((cfg.num_frames,) if cfg.num_frames > 1 else ()), cfg.in_channels, cfg.input_size,
                    cfg.input_size)
    with torch.no_grad():
        d = (back(x, torch.tensor([0, 5])) - net.eval()(x, torch.tensor([0, 5]))).abs().max().item()
    print(f"reloaded: max abs logit difference {d:.1e}")
    return 0 if d == 0 else 1


def cmd_evaluate(args):
    torch.set_num_threads(args.threads)
    env = Env(args.weights)
    pool = load_pool(env, args.eval_seed, args.eval_pool, args.work, log=lambda m: print(m, flush=True))
    n, S, r0 = args.eval_pool, env.steps, env.rho_steps
    labels = pool["labels"]
    if args.static_only:
        ada_plans = []
    else:
        net = ada_net.load(args.ada)
        if (net.cfg.rho_steps, net.cfg.boundary, net.cfg.steps) != (env.rho_steps, env.boundary, env.steps):
            raise SystemExit(f"{args.ada} decides for rho_steps {net.cfg.rho_steps}, boundary {net.cfg.boundary}, "
                             f"steps {net.cfg.steps}; the environment has {env.rho_steps}, {env.boundary}, {env.steps}")
        with torch.no_grad():
            probs = net.probabilities(pool["x_rho"], labels)
        ada_plans = [ada_net.greedy_plan(p, net.cfg) for p in probs]
    judge = Judge(env.video)
    policies = {"ada": ada_plans, "blockdance:n=2": [static_plan(S, 2)] * n, "blockdance:n=3": [static_plan(S, 3)] * n,
                "blockdance:n=4": [static_plan(S, 4)] * n}
    res = {"eval_pool": n, "eval_seed": args.eval_seed, "weights": os.path.basename(args.ada), "policies": {}}
    uncached_prob = judge.prob(pool["final"], labels)
    names = judge.class_names
    for name, plans in policies.items():
        if args.static_only and name == "ada":
            continue
        out = rollout_pool(env, pool, plans, args.work if name != "ada" else None,
                           f"s{args.eval_seed}-n{n}-{name.replace(':', '').replace('=', '')}")
        q = item_ssim(out, pool["final"])
        reuse = torch.tensor([p.count("R") for p in plans], dtype=torch.float)
        pred = judge.logits(out).argmax(dim=1)
        entry = {"ssim": float(q.mean()), "ssim_min": float(q.min()),
                 "psnr": float(psnr(out, pool["final"]).mean()),
                 "reuse_fraction": float(reuse.mean() / (S - r0)),
                 "macs_saved": env.saved_fraction(float(reuse.mean())),
                 "class_accuracy": float((pred == labels).float().mean()),
                 "class_prob": float(judge.prob(out, labels).mean()),
                 "distinct_plans": len(set(plans))}
        if name == "ada":
            entry["per_class"] = {names[c]: {"reuse_fraction": float(reuse[labels == c].mean() / (S - r0)),
                                             "ssim": float(q[labels == c].mean()),
                                             "distinct_plans": len(set(p for p, l in zip(plans, labels.tolist())
                                                                       if l == c))}
                                  for c in range(env.cfg.num_classes)}
            counts = {}
            for p in plans:
                counts[p] = counts.get(p, 0) + 1
            entry["plans"] = sorted(({"plan": p, "count": c, "reuse_steps": p.count("R"),
                                      "classes": sorted({names[l] for pp, l in zip(plans, labels.tolist()) if pp == p})}
                                     for p, c in counts.items()), key=lambda e: -e["count"])
            entry["reuse_per_step"] = [float(np.mean([p[s] == "R" for p in plans])) for s in range(r0, S)]
            entry["p_cache_mean"] = float(probs.mean())
            entry["p_cache_std_over_images"] = float(probs.std(dim=0).mean())
        res["policies"][name] = entry
        print(f"{name:16s} reuse {entry['reuse_fraction']:.3f} saved {100 * entry['macs_saved']:.1f}% "
              f"SSIM {entry['ssim']:.4f} (min {entry['ssim_min']:.3f}) PSNR {entry['psnr']:.2f} "
              f"acc {entry['class_accuracy']:.3f} distinct {entry['distinct_plans']}", flush=True)
    res["uncached_class_accuracy"] = float((judge.logits(pool["final"]).argmax(dim=1) == labels).float().mean())
    res["uncached_class_prob"] = float(uncached_prob.mean())
    if args.static_only:
        return 0
    print(json.dumps(res["policies"]["ada"]["per_class"], indent=1))
    for e in res["policies"]["ada"]["plans"][:10]:
        print(f"  {e['count']:3d}x {e['plan']} ({e['reuse_steps']} R) {','.join(e['classes'])}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
        print(f"wrote {args.out}")
    return 0


def rollout_pool(env, pool, plans, work=None, key="", chunk=32):
    """Final samples of the pool's starts under their plans (whole 50-letter strings); a static policy's result is
    cached in work (it does not depend on the network)."""
    path = os.path.join(work, f"eval-{key}.safetensors") if work else None
    if path and os.path.exists(path):
        return safetensors_io.load_file(path)[0]["final"]
    n, r0, out = len(plans), env.rho_steps, []
    for i in range(0, n, chunk):
        kinds = kinds_of(plans[i:i + chunk])[:, r0:]
        x, _ = env.rollout(pool["x_rho"][i:i + chunk], pool["labels"][i:i + chunk], kinds, s0=r0,
                           feat=pool_feat(pool, torch.arange(i, min(n, i + chunk))))
        out.append(x)
    out = torch.cat(out).contiguous()
    if path:
        safetensors_io.save_file({"final": out}, path, {"plan": plans[0]})
    return out


def psnr(a, b, data_range=2.0):
    """PSNR per item (a clip: the mean over its frames, each frame an image, as bench/quality.py counts clips)."""
    if a.dim() == 5:
        n, f = a.shape[:2]
        return psnr(a.reshape(n * f, *a.shape[2:]), b.reshape(n * f, *b.shape[2:]), data_range).reshape(n, f).mean(1)
    mse = ((a.clamp(-1, 1) - b.clamp(-1, 1)) ** 2).mean(dim=(1, 2, 3)).double()
    return (10 * torch.log10(data_range ** 2 / mse.clamp_min(1e-30))).float()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    ch, tr, be, ex, ev = (sub.add_parser(n) for n in ("check", "train", "bench", "export", "evaluate"))
    for p in (ch, tr, be, ex, ev):
        p.add_argument("--weights", default=WEIGHTS, help="the base model: the bundled image DiT (default) or the "
                                                          "bundled video Latte, models/latte-shapes-video-32.safetensors")
    for p in (ch, tr, be, ev):
        p.add_argument("--threads", type=int, default=1)
    for p in (tr, be, ex, ev):
        p.add_argument("--work", default=None, help="checkpoint and pools (default .cache/ada-<base model>)")
    for p in (tr, be):
        p.add_argument("--depth", type=int, default=3)
        p.add_argument("--hidden", type=int, default=64)
        p.add_argument("--heads", type=int, default=4)
        p.add_argument("--patch", type=int, default=4)
        p.add_argument("--max-reuse", type=int, default=3)
        p.add_argument("--starts", type=int, default=8)
        p.add_argument("--samples", type=int, default=3)
        p.add_argument("--lam", type=float, default=6.0)
    tr.add_argument("--updates", type=int, default=260)
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--warmup", type=int, default=5)
    tr.add_argument("--entropy", type=float, default=0.05)
    tr.add_argument("--adaln-init-std", type=float, default=0.02,
                    help="normal init of the blocks' adaLN modulation instead of zero (make_net)")
    tr.add_argument("--head-init-std", type=float, default=0.02,
                    help="normal init of head.fc2's weight instead of zero (make_net)")
    tr.add_argument("--head-init-bias", type=float, default=None,
                    help="head.fc2's initial bias instead of the contract's +1 (p = 0.73: the untrained policy mostly "
                         "caches); 0 starts every step at p = 0.5, on the greedy threshold (the video run: make_net)")
    tr.add_argument("--clip", type=float, default=1.0)
    tr.add_argument("--pool", type=int, default=96)
    tr.add_argument("--pool-seed", type=int, default=1)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--resume", action="store_true")
    tr.add_argument("--max-minutes", type=float, default=0.0)
    tr.add_argument("--ckpt-minutes", type=float, default=3.0)
    tr.add_argument("--log-every", type=int, default=1)
    for p in (tr, ev):
        p.add_argument("--eval-pool", type=int, default=48)
        p.add_argument("--eval-seed", type=int, default=2)
    ex.add_argument("--out", default=None, help="default models/ada-<base model>.safetensors")
    ev.add_argument("--ada", default=None, help="default models/ada-<base model>.safetensors")
    ev.add_argument("--out", default="")
    ev.add_argument("--static-only", action="store_true", help="only the BlockDance N policies (cached in --work)")
    args = ap.parse_args(argv)
    stem = model_stem(args.weights)
    if getattr(args, "work", "") is None:
        args.work = os.path.join(REPO, ".cache", f"ada-{stem}")
    if args.cmd == "export" and args.out is None:
        args.out = os.path.join(REPO, "models", f"ada-{stem}.safetensors")
    if args.cmd == "evaluate" and args.ada is None:
        args.ada = os.path.join(REPO, "models", f"ada-{stem}.safetensors")
    return {"check": cmd_check, "train": cmd_train, "bench": cmd_bench, "export": cmd_export,
            "evaluate": cmd_evaluate}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
