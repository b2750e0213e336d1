#!/usr/bin/python3
"""A small motion-aware classifier of the shapes-video clips (tools/latte_shapes_video.py), used to score generated
clips: class accuracy, a Fréchet distance between its features of generated and of real clips, and a temporal
consistency figure (mean absolute frame-to-frame change, generated against real).

Network (input [N, F, 3, 32, 32] in [-1, 1], treated as [N, 3, F, 32, 32]): three 3-D convolutions (kernel 3 over
frames, rows and columns, pad 1, + BatchNorm + ReLU; 3->16, 16->32, 32->64), spatial max-pooling by 2 after the
first two, then the mean over frames and positions (64-d) -> linear 64 + ReLU (the 64-d feature vector) -> linear 6.
The convolutions span frames, so the network sees motion: a single frame cannot tell disc-right from disc-left.

Training (`train`): clips of seed --data-seed (disjoint from the generator's training seed 1), batch b of step s =
clips [s·B, (s+1)·B), AdamW, cosine learning rate, Gaussian noise σ ≤ 0.1 on half the batch. `eval` measures held-out
accuracy on seed 1000; `--shuffle-frames` evaluates with the frame order shuffled (a motion-blind network would score
the same; this one must drop on the motion-only pairs).

Command line:
  /usr/bin/python3 tools/latte_clip_classifier.py train [--steps 1200] [--batch 32] [--out models/latte-clip-classifier.safetensors]
  /usr/bin/python3 tools/latte_clip_classifier.py eval [--weights ...] [--n 600] [--shuffle-frames]
  /usr/bin/python3 tools/latte_clip_classifier.py score --clips FILE.safetensors [--tensor latent] [--n-real 600] [--no-floor]
      FILE: clips [N, F, 3, 32, 32] in [-1, 1] and labels [N] (what `blockdance generate --model shapes-video` writes).
      Prints JSON: n, chance, accuracy, per_class, confusion, fd, frame_change, and (unless --no-floor) fd_real_same_n
      and frame_change_real, the same figures for N real clips of the same classes.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import latte_shapes_video as clips_data  # noqa: E402
import safetensors_io  # noqa: E402
import shapes_classifier  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(REPO, "models", "latte-clip-classifier.safetensors")
HELDOUT_SEED, FLOOR_SEED = 1000, 2000


class ClipNet(nn.Module):
    def __init__(self, classes=clips_data.NUM_CLASSES):
        super().__init__()

        def block(i, o):
            return nn.Sequential(nn.Conv3d(i, o, 3, padding=1, bias=False), nn.BatchNorm3d(o), nn.ReLU())
        self.c1, self.c2, self.c3 = block(3, 16), block(16, 32), block(32, 64)
        self.pool = nn.MaxPool3d((1, 2, 2))
        self.fc = nn.Linear(64, 64)
        self.out = nn.Linear(64, classes)

    def features(self, x):
        h = x.permute(0, 2, 1, 3, 4)                      # [N, 3, F, H, W]
        h = self.pool(self.c1(h))
        h = self.pool(self.c2(h))
        h = self.c3(h).mean(dim=(2, 3, 4))
        return torch.relu(self.fc(h))

    def forward(self, x):
        return self.out(self.features(x))


def load(path=WEIGHTS):
    state, _ = safetensors_io.load_file(path)
    m = ClipNet()
    m.load_state_dict({k: (v.long() if k.endswith("num_batches_tracked") else v.float()) for k, v in state.items()})
    return m.eval()


def predict(model, clips, batch=64):
    feats, logits = [], []
    with torch.no_grad():
        for s in range(0, len(clips), batch):
            x = torch.as_tensor(clips[s:s + batch]).float().clamp(-1, 1)
            f = model.features(x)
            feats.append(f)
            logits.append(model.out(f))
    return torch.cat(feats).double().numpy(), torch.cat(logits).argmax(dim=1).numpy()


def frame_change(clips):
    """Mean |x[f+1] − x[f]| over clips, frames and pixels (values in [-1, 1])."""
    c = np.clip(np.asarray(clips, dtype=np.float64), -1, 1)
    return float(np.abs(c[:, 1:] - c[:, :-1]).mean())


def real_clips(seed, labels):
    """Real clips of the same class composition as `labels` (the first ones of each class in the stream of seed)."""
    want = {c: int((labels == c).sum()) for c in range(clips_data.NUM_CLASSES)}
    idx, i = [], 0
    while any(v > 0 for v in want.values()):
        c = clips_data.label_of(seed, i)
        if want[c] > 0:
            idx.append(i)
            want[c] -= 1
        i += 1
    return clips_data.generate(seed, idx)


def cmd_train(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = ClipNet()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    g = torch.Generator().manual_seed(1)
    t0 = time.time()
    model.train()
    for step in range(args.steps):
        x, y = clips_data.generate_range(args.data_seed, step * args.batch, args.batch)
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        half = args.batch // 2
        x[:half] += torch.randn(x[:half].shape, generator=g) * torch.rand(half, 1, 1, 1, 1, generator=g) * 0.1
        for gp in opt.param_groups:
            gp["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 20 == 0:
            print(f"step {step + 1} loss {loss.item():.4f} {(time.time() - t0) / 60:.1f} min", flush=True)
    model.eval()
    safetensors_io.save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, args.out,
                             {"trained_by": "tools/latte_clip_classifier.py", "steps": str(args.steps),
                              "batch": str(args.batch), "data_seed": str(args.data_seed),
                              "class_names": ",".join(clips_data.CLASS_NAMES)})
    print(f"wrote {args.out}")
    return 0


def cmd_eval(args):
    model = load(args.weights)
    x, y = clips_data.generate_range(HELDOUT_SEED, 0, args.n)
    if args.shuffle_frames:
        rng = np.random.default_rng(0)
        x = np.stack([c[rng.permutation(c.shape[0])] for c in x])
    _, pred = predict(model, x)
    acc = float((pred == y).mean())
    per = {clips_data.CLASS_NAMES[c]: float((pred[y == c] == c).mean()) for c in range(clips_data.NUM_CLASSES) if (y == c).any()}
    print(json.dumps({"n": int(args.n), "shuffled_frames": bool(args.shuffle_frames), "accuracy": acc, "per_class": per}))
    return 0


_REAL_STATS = {}


def real_stats(model, n_real=600):
    """Mean and covariance of the features of n_real real clips (seed HELDOUT_SEED, every class equally), cached."""
    if n_real not in _REAL_STATS:
        ref_x, _ = real_clips(HELDOUT_SEED, np.repeat(np.arange(clips_data.NUM_CLASSES), n_real // clips_data.NUM_CLASSES))
        _REAL_STATS[n_real] = shapes_classifier.feature_stats(predict(model, ref_x)[0])
    return _REAL_STATS[n_real]


def score_clips(clips, labels=None, model=None, n_real=600, floor=True):
    """clips [N, F, 3, 32, 32] in [-1, 1] (numpy), labels [N] or None. Returns the score dict: accuracy (with per-class
    accuracy and the confusion matrix), the Fréchet distance of the features to n_real real clips, the mean
    frame-to-frame change, and with floor the same two figures for N real clips of the same classes (seed FLOOR_SEED)."""
    model = model if model is not None else load()
    feats, pred = predict(model, clips)
    mu, sigma = real_stats(model, n_real)
    out = {"n": int(len(clips)), "chance": 1.0 / clips_data.NUM_CLASSES, "accuracy": None,
           "fd": shapes_classifier.frechet_distance(*shapes_classifier.feature_stats(feats), mu, sigma),
           "frame_change": frame_change(clips)}
    if labels is not None:
        k = clips_data.NUM_CLASSES
        out["accuracy"] = float((pred == labels).mean())
        out["per_class"] = {clips_data.CLASS_NAMES[c]: float((pred[labels == c] == c).mean()) for c in range(k) if (labels == c).any()}
        out["confusion"] = [[int(((labels == a) & (pred == b)).sum()) for b in range(k)] for a in range(k)]   # row: requested
    if floor:
        real, _ = real_clips(FLOOR_SEED, labels if labels is not None else pred)
        out["fd_real_same_n"] = shapes_classifier.frechet_distance(*shapes_classifier.feature_stats(predict(model, real)[0]), mu, sigma)
        out["frame_change_real"] = frame_change(real)
    return out


def cmd_score(args):
    d, _ = safetensors_io.load_file(args.clips)
    clips = d[args.tensor].float().numpy()
    labels = d["labels"].long().numpy() if "labels" in d else None
    print(json.dumps(score_clips(clips, labels, load(args.weights), args.n_real, floor=not args.no_floor)))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train")
    tr.add_argument("--steps", type=int, default=1200)
    tr.add_argument("--batch", type=int, default=32)
    tr.add_argument("--lr", type=float, default=3e-3)
    tr.add_argument("--data-seed", type=int, default=5)
    tr.add_argument("--threads", type=int, default=2)
    tr.add_argument("--out", default=WEIGHTS)
    ev = sub.add_parser("eval")
    ev.add_argument("--weights", default=WEIGHTS)
    ev.add_argument("--n", type=int, default=600)
    ev.add_argument("--shuffle-frames", action="store_true")
    sc = sub.add_parser("score")
    sc.add_argument("--clips", required=True)
    sc.add_argument("--tensor", default="latent")
    sc.add_argument("--weights", default=WEIGHTS)
    sc.add_argument("--n-real", type=int, default=600)
    sc.add_argument("--no-floor", action="store_true", help="skip the real clips of the same count (fd_real_same_n, frame_change_real)")
    args = ap.parse_args(argv)
    return {"train": cmd_train, "eval": cmd_eval, "score": cmd_score}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
