#!/usr/bin/python3
"""Trains the project's small class-conditional pixel-space DiT on the procedural shapes data (tools/shapes_data.py).

The model is the original DiT (facebookresearch/DiT `models.py`, model-spec §1) as a trainable nn.Module whose
state_dict uses the original key names exactly, so the exported EMA weights load in tools/dit_reference.py and in the
C# implementation (`verify-export` checks dit_reference.py's forward against this module's forward).

Diffusion and loss (model-spec §1.13; `gaussian_diffusion.py: training_losses` with ModelMeanType.EPSILON,
ModelVarType.LEARNED_RANGE, LossType.MSE, as in DiT's `create_diffusion(timestep_respacing="")`):
  * linear betas 1e-4..0.02, 1000 steps, float64 tables gathered and cast to float32; t ~ U{0..999};
  * x_t = sqrt(ᾱ_t)·x0 + sqrt(1-ᾱ_t)·ε;  model(x_t, t, y) -> [ε̂ (3 ch), v (3 ch)];
  * loss = w_t·mse + vb, mse = mean over C,H,W of (ε - ε̂)²;  vb = the VLB term L_t in bits/dim computed with the
    *detached* ε̂ (so it only trains the variance output v, exactly as the "frozen_out" of the original code):
    log σ² = frac·log β_t + (1-frac)·log β̃_t (clipped), frac = (v+1)/2; μ = posterior mean of x̂0(ε̂) and x_t;
    L_t = KL(q(x_{t-1}|x_t,x0) || N(μ, σ²)) / ln 2 for t > 0, and the discretised-Gaussian decoder NLL / ln 2 of
    x0 (8-bit bins on [-1, 1]) for t = 0; both averaged over dims; vb is not rescaled (loss_type MSE; with 1000
    steps RESCALED_MSE's factor would be 1 anyway). Loss averaged over the batch.
  * w_t: a deviation from the original loss, on by default (--min-snr-gamma 5; 0 restores w_t = 1): the ε MSE
    weighted by w_t = clamp(SNR_t, floor, γ) / SNR_t, SNR_t = ᾱ_t/(1-ᾱ_t) — in x0 terms (‖x0 - x̂0‖² =
    ‖ε - ε̂‖² / SNR_t) a loss weight clamp(SNR_t, floor, γ). The upper clamp is Min-SNR-γ (Hang et al., ICCV 2023):
    it down-weights the low-noise steps; with the plain MSE a short CPU run learns the high-noise ε too imprecisely
    for DDIM without x0 clipping (x̂0 = (x_t - sqrt(1-ᾱ)ε̂)/sqrt(ᾱ) amplifies the ε error up to 157x at t = 999)
    and the samples drift to saturated colours. The optional floor (--snr-floor, off by default) up-weights the
    high-noise steps; tried at 0.05, it did not make the model use the class label sooner (below).
Initialisation: DiT's `initialize_weights`, except the label table (second deviation, --label-init-std 1; DiT: 0.02).
    With 0.02 the class label stayed unused for thousands of steps: after 1600-2000 steps (lr 1e-3) the label rows
    had barely moved from their initial values, ε̂ for the true class and for the null class differed by 0.2-3 % at
    t = 500, and guided samples were class-agnostic blobs (the same with guidance 1 and 4). A unit-variance table
    gives every class a distinct conditioning vector from the first step, so the adaLN modulations can learn
    class-specific behaviour at once.
  * classifier-free-guidance label dropout 0.1: the label is replaced by the null class num_classes.
Optimiser: AdamW (betas 0.9/0.999, weight decay 0, as DiT); learning rate warmed up linearly over --warmup steps,
constant, then decayed linearly to 0 over the last (1 - --decay-start) of --steps (DiT keeps it constant; the decay
makes the final weights precise enough at high noise); gradient-norm clipping at --clip (DiT does not clip).
EMA of the weights, decay min(--ema, (1+n)/(10+n)) at update n (warm-up so the early average is not dominated by the
initialisation), updated after every optimiser step; the EMA weights are exported.
Precision (--precision bf16, default): the transformer blocks run under torch.autocast(cpu, bfloat16) (about 3x
faster on a CPU with AVX512-BF16); weights, optimiser state, EMA, the embedders, the residual stream, the final layer
and the loss stay float32. The exported weights are float32 and are evaluated in float32.
Initialisation as DiT's `initialize_weights` (xavier-uniform linears with zero bias, patch-embed xavier on the
flattened kernel, timestep MLP N(0, 0.02), adaLN modulations and the final layer zero), the label table N(0, 1) (above).

Data and resuming: the training set is images [0, --dataset-size) of the shapes stream of --data-seed in the
--spread spread (default narrow: shapes_data.py), rendered once in parallel and cached in --work; the batch of step s
is images (s·B + j) mod N, and the timesteps, noise and label dropout of step s come from a generator seeded by
(seed, s); so an interrupted run resumed from its last checkpoint (`--resume`) continues with exactly the batches it
would have seen. A checkpoint (model, EMA, optimiser, loss log) is written to --work every --ckpt-minutes and at the end.

Command line:
  /usr/bin/python3 tools/train_dit.py train [--steps 5500] [--batch 64] [--lr 1e-3] [--warmup 500]
      [--decay-start 0.6] [--min-snr-gamma 5] [--snr-floor 0] [--label-init-std 1] [--ema 0.999] [--clip 1.0] [--precision bf16|fp32] [--threads 2]
      [--work .cache/dit-shapes] [--resume] [--max-minutes M] [--depth 12 --hidden 128 --heads 4 --patch 4]
      [--seed 0 --data-seed 1] [--spread narrow] [--dataset-size 65536]
      (--steps is part of the schedule: resume with the same value)
  /usr/bin/python3 tools/train_dit.py export [--work .cache/dit-shapes] [--out models/dit-shapes-32.safetensors]
      [--loss-csv models/training-loss.csv --loss-png models/training-loss.png]
  /usr/bin/python3 tools/train_dit.py verify-export --weights models/dit-shapes-32.safetensors
      checks that dit_reference.py's forward equals this module's forward on the exported weights
  /usr/bin/python3 tools/train_dit.py bench [--depth .. --hidden .. --patch .. --batch ..] [--iters 10]
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
import dit_reference as ref  # noqa: E402
import safetensors_io  # noqa: E402
import shapes_data  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------------------------------------------
# The model (original DiT module tree and key names)
# ----------------------------------------------------------------------------------------------------------------

class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, T, D = x.shape
        dh = D // self.heads
        qkv = self.qkv(x).reshape(B, T, 3, self.heads, dh).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = torch.softmax((q * dh ** -0.5) @ k.transpose(-2, -1), dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(B, T, D))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class DiTBlock(nn.Module):
    def __init__(self, dim, heads, mlp_ratio=4.0):
        super().__init__()
        self.attn = Attention(dim, heads)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim, bias=True))

    def forward(self, x, c):
        D = x.shape[-1]
        sm, cm, gm, sp, cp, gp = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gm.unsqueeze(1) * self.attn(modulate(F.layer_norm(x, (D,), eps=1e-6), sm, cm))
        return x + gp.unsqueeze(1) * self.mlp(modulate(F.layer_norm(x, (D,), eps=1e-6), sp, cp))


class FinalLayer(nn.Module):
    def __init__(self, dim, patch, out_channels):
        super().__init__()
        self.linear = nn.Linear(dim, patch * patch * out_channels, bias=True)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim, bias=True))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(F.layer_norm(x, (x.shape[-1],), eps=1e-6), shift, scale))


class TimestepEmbedder(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(ref.FREQ_DIM, dim, bias=True), nn.SiLU(), nn.Linear(dim, dim, bias=True))

    def forward(self, t):
        return self.mlp(ref.timestep_embedding(t, freq_shift=0))


class LabelEmbedder(nn.Module):
    def __init__(self, num_classes, dim):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + 1, dim)   # last row = null class (CFG)

    def forward(self, y):
        return self.embedding_table(y)


class PatchEmbed(nn.Module):
    def __init__(self, patch, in_channels, dim):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch, stride=patch, bias=True)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class DiTModule(nn.Module):
    """The original DiT; state_dict keys = model-spec §1.2 (incl. the fixed pos_embed)."""

    def __init__(self, cfg, label_init_std=0.02):
        super().__init__()
        self.cfg = cfg
        self.label_init_std = label_init_std
        D, p = cfg.hidden_size, cfg.patch_size
        g = cfg.input_size // p
        self.x_embedder = PatchEmbed(p, cfg.in_channels, D)
        self.t_embedder = TimestepEmbedder(D)
        self.y_embedder = LabelEmbedder(cfg.num_classes, D)
        self.pos_embed = nn.Parameter(ref.sincos_pos_embed_2d(D, g, g).reshape(1, g * g, D), requires_grad=False)
        self.blocks = nn.ModuleList([DiTBlock(D, cfg.num_heads) for _ in range(cfg.depth)])
        self.final_layer = FinalLayer(D, p, cfg.out_channels)
        self.autocast_blocks = False
        self.initialize_weights()

    def initialize_weights(self):
        """DiT `initialize_weights` (the label table's std is a parameter: DiT uses 0.02)."""
        def _basic_init(m):
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
        self.apply(_basic_init)
        w = self.x_embedder.proj.weight.data
        nn.init.xavier_uniform_(w.view([w.shape[0], -1]))
        nn.init.constant_(self.x_embedder.proj.bias, 0)
        nn.init.normal_(self.y_embedder.embedding_table.weight, std=self.label_init_std)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        for b in self.blocks:
            nn.init.constant_(b.adaLN_modulation[-1].weight, 0)
            nn.init.constant_(b.adaLN_modulation[-1].bias, 0)
        nn.init.constant_(self.final_layer.adaLN_modulation[-1].weight, 0)
        nn.init.constant_(self.final_layer.adaLN_modulation[-1].bias, 0)
        nn.init.constant_(self.final_layer.linear.weight, 0)
        nn.init.constant_(self.final_layer.linear.bias, 0)

    def forward(self, x, t, y):
        cfg = self.cfg
        p, g = cfg.patch_size, cfg.input_size // cfg.patch_size
        h = self.x_embedder(x) + self.pos_embed
        c = self.t_embedder(t) + self.y_embedder(y)
        # training only (--precision bf16): the blocks' matmuls in bfloat16 autocast; the embedders, the residual
        # stream (x + gate·f(x) promotes back to float32) and the final layer stay float32
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast_blocks):
            for b in self.blocks:
                h = b(h, c)
        h = self.final_layer(h.float(), c)
        return ref.unpatchify(h, p, cfg.out_channels, g, g)


def make_config(depth, hidden, heads, patch, num_classes=shapes_data.NUM_CLASSES, in_channels=3, input_size=32):
    return ref.DiTConfig(depth=depth, hidden_size=hidden, num_heads=heads, patch_size=patch,
                         in_channels=in_channels, out_channels=2 * in_channels, num_classes=num_classes,
                         input_size=input_size, mlp_hidden=4 * hidden)


# ----------------------------------------------------------------------------------------------------------------
# Diffusion training loss (gaussian_diffusion.py training_losses, EPSILON / LEARNED_RANGE / MSE)
# ----------------------------------------------------------------------------------------------------------------

class Diffusion:
    def __init__(self, num_steps=ref.NUM_TRAIN_TIMESTEPS):
        self.num_steps = num_steps
        betas = ref.linear_betas(num_steps)
        acp = np.cumprod(1.0 - betas)
        acp_prev = np.append(1.0, acp[:-1])
        self.sqrt_acp = np.sqrt(acp)
        self.sqrt_1m_acp = np.sqrt(1.0 - acp)
        self.sqrt_recip_acp = np.sqrt(1.0 / acp)
        self.sqrt_recipm1_acp = np.sqrt(1.0 / acp - 1)
        pv = betas * (1.0 - acp_prev) / (1.0 - acp)
        self.post_log_var_clipped = np.log(np.append(pv[1], pv[1:]))
        self.coef1 = betas * np.sqrt(acp_prev) / (1.0 - acp)
        self.coef2 = (1.0 - acp_prev) * np.sqrt(1.0 - betas) / (1.0 - acp)
        self.log_betas = np.log(betas)
        self.snr = acp / (1.0 - acp)

    @staticmethod
    def _g(arr, t, like):
        return torch.from_numpy(arr)[t].float().reshape(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0, t, noise):
        return self._g(self.sqrt_acp, t, x0) * x0 + self._g(self.sqrt_1m_acp, t, x0) * noise

    def posterior_mean(self, x0, xt, t):
        return self._g(self.coef1, t, xt) * x0 + self._g(self.coef2, t, xt) * xt

    def losses(self, model, x0, t, y, noise, min_snr_gamma=0.0, snr_floor=0.0):
        """Returns per-sample (loss, mse, vb); loss = w_t·mse + vb with w_t = clamp(SNR_t, snr_floor, γ)/SNR_t
        (γ = min_snr_gamma; γ = 0: no upper clamp; snr_floor = 0: no lower one; both 0: the original loss)."""
        xt = self.q_sample(x0, t, noise)
        out = model(xt, t, y)
        C = x0.shape[1]
        eps, v = out[:, :C], out[:, C:]
        # vb with the mean output frozen (it trains only the variance values)
        min_log = self._g(self.post_log_var_clipped, t, xt)
        max_log = self._g(self.log_betas, t, xt)
        frac = (v + 1) / 2
        model_log_var = frac * max_log + (1 - frac) * min_log
        x0_pred = self._g(self.sqrt_recip_acp, t, xt) * xt - self._g(self.sqrt_recipm1_acp, t, xt) * eps.detach()
        model_mean = self.posterior_mean(x0_pred, xt, t)
        true_mean = self.posterior_mean(x0, xt, t)
        kl = normal_kl(true_mean, min_log, model_mean, model_log_var).mean(dim=(1, 2, 3)) / math.log(2.0)
        nll = -discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_log_var).mean(dim=(1, 2, 3)) \
            / math.log(2.0)
        vb = torch.where(t == 0, nll, kl)
        mse = ((noise - eps) ** 2).mean(dim=(1, 2, 3))
        if min_snr_gamma > 0 or snr_floor > 0:
            clamped = np.maximum(self.snr, snr_floor)
            if min_snr_gamma > 0:
                clamped = np.minimum(clamped, min_snr_gamma)
            w = self._g(clamped / self.snr, t, mse)
            return w * mse + vb, mse, vb
        return mse + vb, mse, vb


def normal_kl(mean1, logvar1, mean2, logvar2):
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def approx_standard_normal_cdf(x):
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


def discretized_gaussian_log_likelihood(x, means, log_scales):
    """log-likelihood of 8-bit data in [-1, 1] under a discretised Gaussian (Improved DDPM / DiT)."""
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_cdf_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_cdf_delta))


# ----------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------

def step_generator(seed, step):
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step))


def _render_chunk(job):
    seed, start, n, spread = job
    x, y = shapes_data.generate_range(seed, start, n, spread)
    return shapes_data.to_uint8_hwc(x), y


def load_dataset(args):
    """Images [0, --dataset-size) of the shapes stream of --data-seed (spread --spread) as uint8 [N, 32, 32, 3] and
    labels [N]: rendered once with every thread (numpy rendering cost about a quarter of a training step when done
    per batch) and cached in --work, so a resumed run reads the same images."""
    path = os.path.join(args.work, f"data-{args.data_seed}-{args.spread}-{args.dataset_size}.npz")
    if os.path.exists(path):
        z = np.load(path)
        return z["images"], z["labels"]
    import multiprocessing
    t0 = time.time()
    chunk = 1024
    jobs = [(args.data_seed, s, min(chunk, args.dataset_size - s), args.spread) for s in range(0, args.dataset_size, chunk)]
    with multiprocessing.get_context("fork").Pool(args.threads) as pool:
        parts = pool.map(_render_chunk, jobs)
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    np.savez(path + ".tmp.npz", images=images, labels=labels)
    os.replace(path + ".tmp.npz", path)
    print(f"rendered {len(labels)} training images ({args.spread} spread) in {time.time() - t0:.0f} s", flush=True)
    return images, labels


def make_batch(args, step, num_classes, data):
    """Batch of step s: data set images (s·B + j) mod N, j < B (epochs in order); noise, timesteps and label dropout
    from a generator seeded by (seed, s)."""
    images, labels = data
    idx = (np.arange(args.batch) + step * args.batch) % len(labels)
    x0 = torch.from_numpy(images[idx]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    y = torch.from_numpy(labels[idx])
    g = step_generator(args.seed, step)
    t = torch.randint(0, ref.NUM_TRAIN_TIMESTEPS, (args.batch,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    drop = torch.rand(args.batch, generator=g) < args.class_dropout
    y = torch.where(drop, torch.full_like(y, num_classes), y)
    return x0, t, y, noise


def lr_at(args, step):
    """Linear warm-up over --warmup steps, constant, then (--decay-start f < 1) a linear decay to 0 over the last
    (1 - f)·steps steps (a warm-up/stable/decay schedule)."""
    lr = args.lr * min(1.0, (step + 1) / max(1, args.warmup))
    start = int(args.decay_start * args.steps)
    if args.decay_start < 1.0 and step >= start:
        lr *= max(0.0, (args.steps - step) / max(1, args.steps - start))
    return lr


def save_ckpt(path, state):
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def cmd_train(args):
    cfg = make_config(args.depth, args.hidden, args.heads, args.patch)
    return run_training(
        args, cfg, lambda label_init_std: DiTModule(cfg, label_init_std),
        f"DiT depth={cfg.depth} hidden={cfg.hidden_size} heads={cfg.num_heads} patch={cfg.patch_size} "
        f"tokens={(cfg.input_size // cfg.patch_size) ** 2}",
        load_dataset, make_batch)


def run_training(args, cfg, build, describe, load_data, make_batch_of, loss_model=lambda model: model):
    """The training loop shared by the DiT and the Latte trainers (tools/latte_train.py): model and EMA from
    build(label_init_std), optimiser, resume, data from load_data(args), batches from make_batch_of(args, step,
    num_classes, data), the loss of Diffusion.losses on loss_model(model), EMA update, logging and checkpoints."""
    torch.set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)
    ckpt_path = os.path.join(args.work, "checkpoint.pt")
    torch.manual_seed(args.seed)
    model = build(args.label_init_std)
    model.autocast_blocks = args.precision == "bf16"
    ema = build(0.02)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.0)
    step, log, elapsed_before = 0, [], 0.0
    hparams = {k: v for k, v in vars(args).items() if k not in ("func", "resume", "work", "threads",
                                                                  "max_minutes", "ckpt_minutes", "log_every")}
    if args.resume and os.path.exists(ckpt_path):
        st = torch.load(ckpt_path)
        if st["hparams"] != hparams:
            raise SystemExit(f"--resume: the checkpoint's settings {st['hparams']} differ from {hparams}")
        model.load_state_dict(st["model"])
        ema.load_state_dict(st["ema"])
        opt.load_state_dict(st["opt"])
        step, log, elapsed_before = st["step"], st["log"], st["elapsed_s"]
        print(f"resumed from {ckpt_path} at step {step}", flush=True)
    elif os.path.exists(ckpt_path) and not args.resume:
        raise SystemExit(f"{ckpt_path} exists: pass --resume to continue it or remove it to start over")
    nparams = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"{describe} params={nparams / 1e6:.2f}M batch={args.batch} "
          f"steps={args.steps} threads={args.threads}", flush=True)
    data = load_data(args)
    diff = Diffusion()
    ema_params = [p for p in ema.parameters()]
    model_params = [p for p in model.parameters()]

    def checkpoint(elapsed):
        save_ckpt(ckpt_path, {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                              "step": step, "log": log, "elapsed_s": elapsed, "hparams": hparams,
                              "config": vars(cfg)})

    t_start = time.time()
    last_ckpt = t_start
    acc = {"loss": 0.0, "mse": 0.0, "vb": 0.0, "n": 0}
    model.train()
    while step < args.steps:
        x0, t, y, noise = make_batch_of(args, step, cfg.num_classes, data)
        for gparam in opt.param_groups:
            gparam["lr"] = lr_at(args, step)
        loss, mse, vb = diff.losses(loss_model(model), x0, t, y, noise, args.min_snr_gamma, args.snr_floor)
        loss = loss.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        with torch.no_grad():
            d = min(args.ema, (1 + step) / (10 + step))
            for pe, pm in zip(ema_params, model_params):
                if pm.requires_grad:
                    pe.mul_(d).add_(pm.detach(), alpha=1 - d)
        step += 1
        acc["loss"] += loss.item()
        acc["mse"] += mse.mean().item()
        acc["vb"] += vb.mean().item()
        acc["n"] += 1
        now = time.time()
        if step % args.log_every == 0 or step == args.steps:
            n = acc["n"]
            elapsed = elapsed_before + now - t_start
            row = {"step": step, "loss": acc["loss"] / n, "mse": acc["mse"] / n, "vb": acc["vb"] / n,
                   "lr": lr_at(args, step - 1), "elapsed_s": round(elapsed, 1)}
            log.append(row)
            acc = {"loss": 0.0, "mse": 0.0, "vb": 0.0, "n": 0}
            print(f"step {step} loss {row['loss']:.4f} mse {row['mse']:.4f} vb {row['vb']:.4f} "
                  f"lr {row['lr']:.2e} {elapsed / 60:.1f} min ({step / max(elapsed, 1e-9):.2f} it/s overall)",
                  flush=True)
        if now - last_ckpt > args.ckpt_minutes * 60 or step == args.steps:
            checkpoint(elapsed_before + now - t_start)
            last_ckpt = now
        if args.max_minutes and (now - t_start) > args.max_minutes * 60:
            checkpoint(elapsed_before + now - t_start)
            print(f"stopping after {args.max_minutes} min at step {step} (resume with --resume)", flush=True)
            return 3
    print(f"done: {step} steps in {(elapsed_before + time.time() - t_start) / 60:.1f} min", flush=True)
    return 0


# ----------------------------------------------------------------------------------------------------------------
# Export
# ----------------------------------------------------------------------------------------------------------------

def export_metadata(cfg, st):
    hp = st["hparams"]
    last = st["log"][-1] if st["log"] else {}
    meta = cfg.metadata("original")
    meta.update({
        "class_names": ",".join(shapes_data.CLASS_NAMES), "pixel_space": "true", "value_range": "-1,1",
        "cfg_channels": "3", "mlp_ratio": "4", "null_class": str(cfg.num_classes),
        "diffusion": "linear betas 1e-4..0.02, 1000 steps, epsilon prediction, learned-range sigma",
        "weights": "ema", "ema_decay": str(hp["ema"]),
        "train_steps": str(st["step"]), "train_batch": str(hp["batch"]), "train_lr": str(hp["lr"]),
        "train_seed": str(hp["seed"]), "data_seed": str(hp["data_seed"]),
        "class_dropout": str(hp["class_dropout"]), "train_precision": hp.get("precision", "fp32"),
        "train_planned_steps": str(hp.get("steps", "")), "train_warmup": str(hp.get("warmup", "")),
        "train_decay_start": str(hp.get("decay_start", 1.0)), "train_clip": str(hp.get("clip", "")),
        "train_min_snr_gamma": str(hp.get("min_snr_gamma", 0.0)), "train_snr_floor": str(hp.get("snr_floor", 0.0)),
        "train_label_init_std": str(hp.get("label_init_std", 0.02)),
        "train_minutes": f"{st['elapsed_s'] / 60:.1f}",
        "final_loss": f"{last.get('loss', float('nan')):.5f}", "final_mse": f"{last.get('mse', float('nan')):.5f}",
        "final_vb": f"{last.get('vb', float('nan')):.5f}",
        "trained_by": "tools/train_dit.py", "data": "tools/shapes_data.py",
        "data_spread": str(hp.get("spread", "wide")), "dataset_size": str(hp.get("dataset_size", "stream")),
    })
    return meta


def write_loss_files(log, csv_path, png_path, smooth=10):
    os.makedirs(os.path.dirname(os.path.abspath(csv_path)), exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["step", "loss", "mse", "vb", "lr", "elapsed_s"])
        w.writeheader()
        for r in log:
            w.writerow({k: (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]) for k in w.fieldnames})
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    steps = np.array([r["step"] for r in log])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key in zip(axes, ("loss", "mse")):
        vals = np.array([r[key] for r in log])
        ax.plot(steps, vals, lw=0.6, alpha=0.4, label=f"{key} (per log interval)")
        if len(vals) >= smooth:
            k = np.ones(smooth) / smooth
            lo = (smooth - 1) // 2
            ax.plot(steps[lo:lo + len(vals) - smooth + 1], np.convolve(vals, k, mode="valid"), lw=1.5,
                    label=f"{smooth}-point centred mean")
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_title("training loss (mse + vb)")
    axes[1].set_title("eps MSE")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def cmd_export(args):
    st = torch.load(os.path.join(args.work, "checkpoint.pt"))
    cfg = ref.DiTConfig(**st["config"])
    module = DiTModule(cfg)
    module.load_state_dict(st["ema"])
    sd = module.state_dict()
    order = [n for n, _ in ref.original_shapes(cfg)]
    if set(order) != set(sd):
        raise SystemExit(f"key mismatch: {set(order) ^ set(sd)}")
    tensors = {n: sd[n].detach().to(torch.float32).contiguous() for n in order}
    meta = export_metadata(cfg, st)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    safetensors_io.save_file(tensors, args.out, meta)
    print(f"wrote {args.out}: {os.path.getsize(args.out) / 1e6:.2f} MB, step {st['step']}")
    if args.loss_csv:
        write_loss_files(st["log"], args.loss_csv, args.loss_png)
        print(f"wrote {args.loss_csv} and {args.loss_png}")
    return verify(args.out)


def load_module(path):
    """The exported file as a DiTModule (fp32, eval mode) plus its metadata."""
    state, meta = safetensors_io.load_file(path)
    cfg = ref.infer_config(state, "original", meta)
    m = DiTModule(cfg)
    m.load_state_dict({k: v.float() for k, v in state.items()})
    return m.eval(), meta


def verify(path, n=8, seed=0):
    """dit_reference.py forward vs this module's forward on the exported weights."""
    module, meta = load_module(path)
    model = ref.load_dit(path)
    cfg = model.cfg
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cfg.in_channels, cfg.input_size, cfg.input_size, generator=g)
    t = torch.randint(0, 1000, (n,), generator=g)
    t[0], t[1] = 0, 999
    y = torch.randint(0, cfg.num_classes + 1, (n,), generator=g)
    y[0] = cfg.num_classes
    with torch.no_grad():
        a = module(x, t, y)
        b = model.forward(x, t, y)
    err = (a - b).abs().max().item()
    ok = err < 1e-4
    print(f"verify {path}: dit_reference forward vs training module max abs diff {err:.3e} "
          f"(output max abs {b.abs().max().item():.3f}) {'ok' if ok else 'FAIL'}")
    return 0 if ok else 1


def cmd_verify(args):
    torch.set_num_threads(args.threads)
    return verify(args.weights)


def cmd_bench(args):
    torch.set_num_threads(args.threads)
    cfg = make_config(args.depth, args.hidden, args.heads, args.patch)
    torch.manual_seed(0)
    model = DiTModule(cfg, args.label_init_std)
    model.autocast_blocks = args.precision == "bf16"
    # give the zero-initialised layers some weight so the cost is representative
    for p in model.parameters():
        if p.requires_grad and p.abs().sum() == 0:
            nn.init.normal_(p, std=0.02)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    diff = Diffusion()
    args.seed, args.data_seed, args.class_dropout = 0, 1, 0.1
    times = []
    for i in range(args.iters + 2):
        t0 = time.perf_counter()
        x0, t, y, noise = make_batch(args, i, cfg.num_classes)
        t1 = time.perf_counter()
        loss = diff.losses(model, x0, t, y, noise)[0].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        t2 = time.perf_counter()
        if i >= 2:
            times.append((t1 - t0, t2 - t1))
    d, c = np.mean([a for a, _ in times]), np.mean([b for _, b in times])
    nparams = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(json.dumps({"depth": cfg.depth, "hidden": cfg.hidden_size, "heads": cfg.num_heads, "patch": cfg.patch_size,
                      "batch": args.batch, "params_M": round(nparams / 1e6, 3), "data_s": round(d, 4),
                      "step_s": round(c, 4), "it_per_s": round(1 / (d + c), 3),
                      "img_per_s": round(args.batch / (d + c), 1)}))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    def arch(p):
        p.add_argument("--depth", type=int, default=12)
        p.add_argument("--hidden", type=int, default=128)
        p.add_argument("--heads", type=int, default=4)
        p.add_argument("--patch", type=int, default=4)
        p.add_argument("--batch", type=int, default=64)
        p.add_argument("--threads", type=int, default=2)

    tr = sub.add_parser("train")
    arch(tr)
    tr.add_argument("--steps", type=int, default=5500)
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--warmup", type=int, default=500)
    tr.add_argument("--clip", type=float, default=1.0)
    tr.add_argument("--ema", type=float, default=0.999)
    tr.add_argument("--decay-start", type=float, default=0.6,
                    help="fraction of --steps after which the learning rate decays linearly to 0 (1 = constant)")
    tr.add_argument("--min-snr-gamma", type=float, default=5.0,
                    help="upper clamp of the SNR weighting of the ε MSE (Min-SNR-γ; 0 = none)")
    tr.add_argument("--snr-floor", type=float, default=0.0,
                    help="lower clamp of the SNR weighting of the ε MSE (up-weights high noise; 0 = none)")
    tr.add_argument("--class-dropout", type=float, default=0.1)
    tr.add_argument("--label-init-std", type=float, default=1.0,
                    help="std of the label table's initialisation (DiT: 0.02; see the module doc)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--data-seed", type=int, default=1)
    tr.add_argument("--spread", choices=sorted(shapes_data.SPREADS), default="narrow", help="shapes_data.py spread")
    tr.add_argument("--dataset-size", type=int, default=65536, help="distinct training images (epochs repeat them)")
    tr.add_argument("--work", default=os.path.join(REPO, ".cache", "dit-shapes"))
    tr.add_argument("--resume", action="store_true")
    tr.add_argument("--ckpt-minutes", type=float, default=3.0)
    tr.add_argument("--max-minutes", type=float, default=0.0, help="stop (checkpointed, resumable) after this long")
    tr.add_argument("--log-every", type=int, default=10)
    tr.add_argument("--precision", choices=("bf16", "fp32"), default="bf16",
                    help="bf16: the transformer blocks run under bfloat16 autocast (weights, optimiser, EMA, "
                         "embedders, final layer and loss in float32)")
    ex = sub.add_parser("export")
    ex.add_argument("--work", default=os.path.join(REPO, ".cache", "dit-shapes"))
    ex.add_argument("--out", default=os.path.join(REPO, "models", "dit-shapes-32.safetensors"))
    ex.add_argument("--loss-csv", default=os.path.join(REPO, "models", "training-loss.csv"))
    ex.add_argument("--loss-png", default=os.path.join(REPO, "models", "training-loss.png"))
    ve = sub.add_parser("verify-export")
    ve.add_argument("--weights", default=os.path.join(REPO, "models", "dit-shapes-32.safetensors"))
    ve.add_argument("--threads", type=int, default=1)
    be = sub.add_parser("bench")
    arch(be)
    be.add_argument("--iters", type=int, default=10)
    be.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    args = ap.parse_args(argv)
    return {"train": cmd_train, "export": cmd_export, "verify-export": cmd_verify, "bench": cmd_bench}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
