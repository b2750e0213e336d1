#!/usr/bin/python3
"""Trains the project's small class-conditional pixel-space Latte (the bundled video model "shapes-video") on the
procedural clips of tools/latte_shapes_video.py (8 frames of 32x32 RGB, 6 classes whose identity lies in the motion).

The model is Latte (Vchitect/Latte models/latte.py, class-conditional, extras = 2) as a trainable nn.Module whose
state_dict uses the official key names (the DiT keys plus the fixed temp_embed), built from the DiT modules of
tools/train_dit.py: per-frame patch embedding + pos_embed; even blocks spatial on ((b f), t, d), odd blocks temporal on
((b t), f, d) with temp_embed added once before block 1; conditioning repeated per frame / per position; the final
layer on the per-frame conditioning. `verify-export` checks tools/latte_reference.py's forward against this module.

Diffusion, loss, optimiser, EMA, schedule and precision are tools/train_dit.py's (its docstring explains each choice:
ε-prediction with learned-range σ, Min-SNR-5 weighted ε MSE + the VLB term, label table N(0, 1), AdamW, warm-up /
stable / linear decay, gradient clipping, EMA warm-up, bf16 autocast in the blocks). The loss is computed frame by
frame: a clip's frames share its timestep, noise level and label (the model sees the clip), and the per-frame losses
are averaged.

Data and resuming: the training set is clips [0, --dataset-size) of seed --data-seed, rendered once and cached in
--work; the batch of step s is clips (s·B + j) mod N; the timesteps, noise and label dropout of step s come from a
generator seeded by (seed, s), so `--resume` continues exactly. Checkpoints every --ckpt-minutes and at the end;
--max-minutes stops (checkpointed) after that long.

Command line:
  /usr/bin/python3 tools/latte_train.py train [--steps 3000] [--batch 8] [--lr 1e-3] [--warmup 300] [--threads 2]
      [--depth 12 --hidden 128 --heads 4 --patch 4] [--work .cache/latte-shapes-video] [--resume] [--max-minutes M]
  /usr/bin/python3 tools/latte_train.py export [--out models/latte-shapes-video-32.safetensors]
      [--loss-csv models/latte-training-loss.csv --loss-png models/latte-training-loss.png]
  /usr/bin/python3 tools/latte_train.py verify-export --weights W
  /usr/bin/python3 tools/latte_train.py bench [--batch 8] [--iters 3]
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dit_reference as ref  # noqa: E402
import latte_reference  # noqa: E402
import latte_shapes_video as clips_data  # noqa: E402
import safetensors_io  # noqa: E402
import train_dit as td  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class LatteModule(nn.Module):
    """Latte with the official key names: pos_embed, temp_embed, x_embedder, t_embedder, y_embedder, blocks, final_layer."""

    def __init__(self, cfg, label_init_std=0.02):
        super().__init__()
        self.cfg = cfg
        D, p = cfg.hidden_size, cfg.patch_size
        g = cfg.input_size // p
        self.x_embedder = td.PatchEmbed(p, cfg.in_channels, D)
        self.t_embedder = td.TimestepEmbedder(D)
        self.y_embedder = td.LabelEmbedder(cfg.num_classes, D)
        self.pos_embed = nn.Parameter(ref.sincos_pos_embed_2d(D, g, g).reshape(1, g * g, D), requires_grad=False)
        self.temp_embed = nn.Parameter(latte_reference.temp_embed_table(D, cfg.num_frames).reshape(1, cfg.num_frames, D),
                                       requires_grad=False)
        self.blocks = nn.ModuleList([td.DiTBlock(D, cfg.num_heads) for _ in range(cfg.depth)])
        self.final_layer = td.FinalLayer(D, p, cfg.out_channels)
        self.autocast_blocks = False
        self.label_init_std = label_init_std
        td.DiTModule.initialize_weights(self)   # DiT's = Latte's initialize_weights (the label std a parameter)

    def forward(self, x, t, y):
        """x [B, F, C, H, W], t [B], y [B] -> [B, F, C', H, W]."""
        cfg = self.cfg
        B, F, C, H, W = x.shape
        p, D = cfg.patch_size, cfg.hidden_size
        gh, gw = H // p, W // p
        T = gh * gw
        h = self.x_embedder(x.reshape(B * F, C, H, W)) + self.pos_embed             # ((b f), t, d)
        c = self.t_embedder(t) + self.y_embedder(y)                                 # [B, D]
        c_spatial, c_temp = c.repeat_interleave(F, dim=0), c.repeat_interleave(T, dim=0)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast_blocks):
            for i in range(0, cfg.depth, 2):
                h = self.blocks[i](h, c_spatial)
                h = h.reshape(B, F, T, D).permute(0, 2, 1, 3).reshape(B * T, F, D)   # '(b f) t d -> (b t) f d'
                if i == 0:
                    h = h + self.temp_embed
                h = self.blocks[i + 1](h, c_temp)
                h = h.reshape(B, T, F, D).permute(0, 2, 1, 3).reshape(B * F, T, D)   # '(b t) f d -> (b f) t d'
        h = self.final_layer(h.float(), c_spatial)
        return ref.unpatchify(h, p, cfg.out_channels, gh, gw).reshape(B, F, cfg.out_channels, H, W)


class FrameView:
    """The model seen frame by frame for td.Diffusion.losses: x [B·F, C, H, W], t [B·F] (each clip's t repeated)."""

    def __init__(self, model, frames):
        self.model, self.frames = model, frames

    def __call__(self, x, t, y):
        F = self.frames
        B = x.shape[0] // F
        out = self.model(x.reshape(B, F, *x.shape[1:]), t[::F], y)
        return out.reshape(B * F, *out.shape[2:])


def make_config(args):
    return latte_reference.LatteConfig(depth=args.depth, hidden_size=args.hidden, num_heads=args.heads,
                                       patch_size=args.patch, in_channels=3, learn_sigma=True,
                                       num_classes=clips_data.NUM_CLASSES, input_size=clips_data.SIZE,
                                       num_frames=clips_data.FRAMES)


def _render_chunk(job):
    seed, start, n = job
    x, y = clips_data.generate_range(seed, start, n)
    return np.round((x + 1.0) * 127.5).astype(np.uint8), y


def load_dataset(args):
    """Clips [0, --dataset-size) as uint8 [N, F, 3, 32, 32] and labels [N], rendered once and cached in --work."""
    path = os.path.join(args.work, f"clips-{args.data_seed}-{args.dataset_size}.npz")
    if os.path.exists(path):
        z = np.load(path)
        return z["clips"], z["labels"]
    import multiprocessing
    t0 = time.time()
    chunk = 256
    jobs = [(args.data_seed, s, min(chunk, args.dataset_size - s)) for s in range(0, args.dataset_size, chunk)]
    with multiprocessing.get_context("fork").Pool(args.threads) as pool:
        parts = pool.map(_render_chunk, jobs)
    data = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    np.savez(path + ".tmp.npz", clips=data[0], labels=data[1])
    os.replace(path + ".tmp.npz", path)
    print(f"rendered {len(data[1])} training clips in {time.time() - t0:.0f} s", flush=True)
    return data


def make_batch(args, step, num_classes, data):
    """Batch of step s, frame by frame: x0 [B·F, 3, 32, 32], t [B·F] (per clip, repeated), y [B], noise like x0."""
    clips, labels = data
    idx = (np.arange(args.batch) + step * args.batch) % len(labels)
    x0 = torch.from_numpy(clips[idx]).float() / 127.5 - 1.0
    B, F = x0.shape[:2]
    x0 = x0.reshape(B * F, *x0.shape[2:])
    y = torch.from_numpy(labels[idx])
    g = td.step_generator(args.seed, step)
    t = torch.randint(0, ref.NUM_TRAIN_TIMESTEPS, (B,), generator=g).repeat_interleave(F)
    noise = torch.randn(x0.shape, generator=g)
    drop = torch.rand(B, generator=g) < args.class_dropout
    y = torch.where(drop, torch.full_like(y, num_classes), y)
    return x0, t, y, noise


# The video classes' shapes in the image model's classes (tools/shapes_data.py CLASS_NAMES: 0 disc, 1 square).
IMAGE_CLASS_OF_VIDEO_CLASS = (0, 0, 1, 1, 0, 1)


def init_from_image(model, path, seed):
    """Latte's image-pretrained initialisation (the Latte paper's "learning strategies": start from a trained image DiT;
    temporal blocks from scratch), with the bundled image DiT: spatial block 2i <- image block i, so the video model
    has twice the image model's depth; x/t embedders and the final layer copied; the temporal blocks keep DiT's
    adaLN-Zero initialisation, so the initial model is the image model applied to each frame. Label table: each video
    class starts from the image class of its shape (IMAGE_CLASS_OF_VIDEO_CLASS) plus N(0, 0.3^2) noise drawn from
    `seed` (so classes of one shape can part), the null class from the image model's null class."""
    state, meta = safetensors_io.load_file(path)
    if meta.get("model", "dit") != "dit" or meta.get("layout") != "original":
        raise SystemExit(f"--init-image {path}: expected an original-layout DiT weights file, got {meta.get('model')} "
                         f"/ {meta.get('layout')}")
    image_depth = int(meta["depth"])
    if model.cfg.depth != 2 * image_depth:
        raise SystemExit(f"--init-image {path}: the video model needs depth 2 x {image_depth} = {2 * image_depth} "
                         f"(one spatial block per image block), got --depth {model.cfg.depth}")
    own = model.state_dict()
    new = {}
    for key, value in state.items():
        if key.startswith("blocks."):
            i, rest = key.split(".", 2)[1:]
            key = f"blocks.{2 * int(i)}.{rest}"
        if key == "y_embedder.embedding_table.weight":
            continue
        if key not in own or own[key].shape != value.shape:
            raise SystemExit(f"--init-image {path}: tensor {key} {tuple(value.shape)} does not fit the video model "
                             f"({tuple(own[key].shape) if key in own else 'no such key'})")
        new[key] = value.float()
    table = state["y_embedder.embedding_table.weight"].float()
    g = torch.Generator().manual_seed(seed)
    rows = [table[c] + 0.3 * torch.randn(table.shape[1], generator=g) for c in IMAGE_CLASS_OF_VIDEO_CLASS]
    new["y_embedder.embedding_table.weight"] = torch.stack(rows + [table[int(meta["null_class"])]])
    own.update(new)
    model.load_state_dict(own)
    return model


def cmd_train(args):
    cfg = make_config(args)

    def build(label_init_std):
        model = LatteModule(cfg, label_init_std)
        return init_from_image(model, args.init_image, args.seed) if args.init_image else model

    return td.run_training(
        args, cfg, build,
        f"Latte depth={cfg.depth} hidden={cfg.hidden_size} heads={cfg.num_heads} patch={cfg.patch_size} "
        f"frames={cfg.num_frames} (batch in clips)",
        load_dataset, make_batch, lambda model: FrameView(model, cfg.num_frames))


def cmd_export(args):
    st = torch.load(os.path.join(args.work, "checkpoint.pt"))
    cfg = latte_reference.LatteConfig(**st["config"])
    module = LatteModule(cfg)
    module.load_state_dict(st["ema"])
    sd = module.state_dict()
    order = [n for n, _ in cfg.shapes()]
    if set(order) != set(sd):
        raise SystemExit(f"key mismatch: {set(order) ^ set(sd)}")
    hp, last = st["hparams"], (st["log"][-1] if st["log"] else {})
    meta = cfg.metadata()
    meta.update({
        "class_names": ",".join(clips_data.CLASS_NAMES), "pixel_space": "true", "value_range": "-1,1",
        "cfg_channels": str(latte_reference.GUIDED_CHANNELS), "null_class": str(cfg.num_classes), "weights": "ema",
        "diffusion": "linear betas 1e-4..0.02, 1000 steps, epsilon prediction, learned-range sigma",
        "train_steps": str(st["step"]), "train_planned_steps": str(hp["steps"]), "train_batch_clips": str(hp["batch"]),
        "train_lr": str(hp["lr"]), "train_seed": str(hp["seed"]), "data_seed": str(hp["data_seed"]),
        "dataset_size": str(hp["dataset_size"]), "train_minutes": f"{st['elapsed_s'] / 60:.1f}",
        "final_loss": f"{last.get('loss', float('nan')):.5f}", "final_mse": f"{last.get('mse', float('nan')):.5f}",
        "trained_by": "tools/latte_train.py", "data": "tools/latte_shapes_video.py",
        "train_warmup": str(hp["warmup"]),
    })
    if hp.get("init_image"):
        meta["train_init_image"] = hp["init_image"]   # image-pretrained initialisation (init_from_image)
    safetensors_io.save_file({n: sd[n].detach().float().contiguous() for n in order}, args.out, meta)
    print(f"wrote {args.out}: {os.path.getsize(args.out) / 1e6:.2f} MB, step {st['step']} of {hp['steps']}")
    if args.loss_csv:
        td.write_loss_files(st["log"], args.loss_csv, args.loss_png)
        print(f"wrote {args.loss_csv} and {args.loss_png}")
    return verify(args.out)


def verify(path, n=2, seed=0):
    """tools/latte_reference.py's forward vs this module's forward on the exported weights (fp32)."""
    model = latte_reference.load_latte(path)
    module = LatteModule(model.cfg)
    state, _ = safetensors_io.load_file(path)
    module.load_state_dict({k: v.float() for k, v in state.items()})
    module.eval()
    g = torch.Generator().manual_seed(seed)
    c = model.cfg
    x = torch.randn(n, c.num_frames, c.in_channels, c.input_size, c.input_size, generator=g)
    t = torch.tensor([999.0, 10.0][:n])
    y = torch.tensor([1, c.num_classes][:n])
    with torch.no_grad():
        a, b = module(x, t, y), model.forward(x, t, y)
    rel = ((a - b).abs().max() / b.abs().max()).item()
    print(f"verify-export: max rel difference module vs latte_reference {rel:.2e}")
    return 0 if rel < 1e-4 else 1


def cmd_bench(args):
    torch.set_num_threads(args.threads)
    cfg = make_config(args)
    model = LatteModule(cfg, 1.0)
    model.autocast_blocks = args.precision == "bf16"
    for p in model.parameters():
        if p.requires_grad and p.abs().sum() == 0:
            nn.init.normal_(p, std=0.02)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    diff, view = td.Diffusion(), FrameView(model, cfg.num_frames)
    args.seed, args.class_dropout = 0, 0.1
    data = clips_data.generate_range(0, 0, args.batch)
    data = (np.round((data[0] + 1) * 127.5).astype(np.uint8), data[1])
    times = []
    for i in range(args.iters + 1):
        t0 = time.perf_counter()
        x0, t, y, noise = make_batch(args, i, cfg.num_classes, data)
        loss = diff.losses(view, x0, t, y, noise, 5.0, 0.0)[0].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 1:
            times.append(time.perf_counter() - t0)
    print(json.dumps({"depth": cfg.depth, "hidden": cfg.hidden_size, "batch_clips": args.batch,
                      "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
                      "step_s": round(float(np.mean(times)), 3)}))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    tr, be = sub.add_parser("train"), sub.add_parser("bench")
    for p in (tr, be):
        p.add_argument("--depth", type=int, default=12)
        p.add_argument("--hidden", type=int, default=128)
        p.add_argument("--heads", type=int, default=4)
        p.add_argument("--patch", type=int, default=4)
        p.add_argument("--batch", type=int, default=8, help="clips per step")
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    be.add_argument("--iters", type=int, default=3)
    tr.add_argument("--steps", type=int, default=3000)
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--warmup", type=int, default=300)
    tr.add_argument("--decay-start", type=float, default=0.6)
    tr.add_argument("--clip", type=float, default=1.0)
    tr.add_argument("--ema", type=float, default=0.999)
    tr.add_argument("--min-snr-gamma", type=float, default=5.0)
    tr.add_argument("--snr-floor", type=float, default=0.0)
    tr.add_argument("--class-dropout", type=float, default=0.1)
    tr.add_argument("--label-init-std", type=float, default=1.0)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--data-seed", type=int, default=1)
    tr.add_argument("--dataset-size", type=int, default=4096)
    tr.add_argument("--work", default=os.path.join(REPO, ".cache", "latte-shapes-video"))
    tr.add_argument("--init-image", default="",
                    help="start from an image DiT (e.g. models/dit-shapes-32.safetensors): see init_from_image")
    tr.add_argument("--resume", action="store_true")
    tr.add_argument("--ckpt-minutes", type=float, default=3.0)
    tr.add_argument("--max-minutes", type=float, default=0.0)
    tr.add_argument("--log-every", type=int, default=10)
    ex = sub.add_parser("export")
    ex.add_argument("--work", default=os.path.join(REPO, ".cache", "latte-shapes-video"))
    ex.add_argument("--out", default=os.path.join(REPO, "models", "latte-shapes-video-32.safetensors"))
    ex.add_argument("--loss-csv", default=os.path.join(REPO, "models", "latte-training-loss.csv"))
    ex.add_argument("--loss-png", default=os.path.join(REPO, "models", "latte-training-loss.png"))
    ve = sub.add_parser("verify-export")
    ve.add_argument("--weights", required=True)
    args = ap.parse_args(argv)
    if args.cmd == "train":
        return cmd_train(args)
    if args.cmd == "bench":
        return cmd_bench(args)
    if args.cmd == "export":
        return cmd_export(args)
    return verify(args.weights)


if __name__ == "__main__":
    sys.exit(main())
