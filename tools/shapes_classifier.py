#!/usr/bin/python3
"""A small CNN classifier of the procedural shapes (tools/shapes_data.py), used to score generated images:
class accuracy, and a Fréchet distance between its penultimate-layer features of generated and of real images (the
project's stand-in for FID: "FSD", Fréchet shapes distance).

Network (input [N, 3, 32, 32] in [-1, 1]; every conv 3x3 pad 1, no bias, + BatchNorm + ReLU):
    conv 3->16, conv 16->16, maxpool 2 | conv 16->32, conv 32->32, maxpool 2 | conv 32->64, conv 64->64,
    maxpool 2 | flatten 64·4·4 -> linear 256 + ReLU (the 256-d feature vector) -> linear 8 (logits)
The features used for the Fréchet distance are the 256 post-ReLU values before the last linear layer.

Training (`train`): an endless stream of generator images of the wide spread (shapes anywhere in the frame, see
shapes_data.py; seed --data-seed, batch b of step s = images [s·B, (s+1)·B)), AdamW, cosine learning rate, with mild corruptions on half the batch (Gaussian noise σ ≤ 0.1, a
light blur) so that slightly imperfect generated shapes are still judged by their shape. Held-out accuracy is
measured on a disjoint seed (clean and corrupted wide-spread images, and clean narrow-spread ones). Real-feature
statistics (mean, covariance over a class-balanced set of 4096 clean images of the narrow spread — the DiT's data —
512 per class, of the seed REAL_SEED) are cached in a committed file, so scoring is one forward
pass over the scored images (plus the floor below).

Files (committed):
    models/shapes-classifier.safetensors   the weights (float32, BatchNorm running statistics included)
    models/shapes-real-stats.safetensors   mu [256] f64, sigma [256, 256] f64 of the real features

Scoring: images are clamped to [-1, 1] first (as when writing them out as 8-bit pixels). The reference statistics
are class-balanced, so score class-balanced sets (the same number of samples per class): the features cluster by
class and an unbalanced set has a large FD for that reason alone. The Fréchet distance is also biased upward for
small N; the JSON therefore gives `fd_real_same_n`: the distance to the same statistics of fresh *real* images
(seed FLOOR_SEED) with the same class composition as the scored set (same per-class counts; balanced when there are
no labels) — the floor for this N. Compare FDs only at equal N and composition.

Command line:
  /usr/bin/python3 tools/shapes_classifier.py score --images FILE.safetensors [--tensor images|latent]
      [--labels-tensor labels] [--out score.json]
      FILE holds images [N, 3, 32, 32] in [-1, 1] (f32/f16) under --tensor (default: `images`, else `latent`) and,
      optionally, int labels [N] under --labels-tensor. Prints JSON: n, accuracy, per_class_accuracy,
      per_class_n, confusion, mean_confidence, fd, fd_real_same_n, predicted_histogram.
  /usr/bin/python3 tools/shapes_classifier.py train [--steps 1500] [--batch 128] [--threads 1] [--resume]
  /usr/bin/python3 tools/shapes_classifier.py eval [--n 4000]            held-out accuracy (clean and corrupted)
  /usr/bin/python3 tools/shapes_classifier.py stats [--n 4096]           recomputes the real-feature statistics
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
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402
import shapes_data  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(REPO, "models", "shapes-classifier.safetensors")
STATS = os.path.join(REPO, "models", "shapes-real-stats.safetensors")
DATA_SEED = 2          # training stream
HELDOUT_SEED = 100     # held-out accuracy
REAL_SEED = 200        # real-feature statistics
FLOOR_SEED = 300       # fd_real_same_n
FEATURE_DIM = 256


class ShapesNet(nn.Module):
    def __init__(self, num_classes=shapes_data.NUM_CLASSES, widths=(16, 32, 64), feat=FEATURE_DIM):
        super().__init__()
        layers, c = [], 3
        for w in widths:
            for _ in range(2):
                layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                c = w
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c * 4 * 4, feat)
        self.head = nn.Linear(feat, num_classes)

    def embed(self, x):
        return F.relu(self.fc(self.features(x).flatten(1)))

    def forward(self, x):
        return self.head(self.embed(x))


def corrupt(x, g):
    """Mild corruptions on a random half of the batch: Gaussian noise (σ ≤ 0.1) and/or a light 3x3 blur."""
    n = x.shape[0]
    sel = torch.rand(n, generator=g) < 0.5
    sigma = torch.rand(n, generator=g) * 0.1 * sel
    blur = (torch.rand(n, generator=g) < 0.3) & sel
    k = torch.tensor([0.25, 0.5, 0.25])
    k2 = (k[:, None] * k[None, :]).expand(3, 1, 3, 3).contiguous()
    xb = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k2, groups=3)
    x = torch.where(blur[:, None, None, None], xb, x)
    x = x + sigma[:, None, None, None] * torch.randn(x.shape, generator=g)
    return x.clamp(-1, 1)


def load_classifier(path=WEIGHTS):
    tensors, meta = safetensors_io.load_file(path)
    m = ShapesNet()
    m.load_state_dict(tensors)
    return m.eval(), meta


def load_stats(path=STATS):
    t, meta = safetensors_io.load_file(path)
    return t["mu"].numpy(), t["sigma"].numpy(), meta


@torch.no_grad()
def features_and_logits(model, images, batch=256):
    feats, logits = [], []
    for i in range(0, images.shape[0], batch):
        x = images[i:i + batch].float().clamp(-1, 1)
        f = model.embed(x)
        feats.append(f)
        logits.append(model.head(f))
    return torch.cat(feats).double().numpy(), torch.cat(logits)


def frechet_distance(mu1, s1, mu2, s2):
    """||mu1 - mu2||² + Tr(S1 + S2 - 2 (S1 S2)^½) (the FID formula, with the usual regularisation fallback)."""
    from scipy import linalg
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(s1.dot(s2), disp=False)
    if not np.isfinite(covmean).all():
        off = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + off).dot(s2 + off))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def feature_stats(f):
    return f.mean(axis=0), np.cov(f, rowvar=False)


def score_images(images, labels=None, model=None, stats=None, floor=True):
    """images [N, 3, 32, 32] (torch, [-1, 1]); labels [N] or None. Returns the score dict."""
    if model is None:
        model, _ = load_classifier()
    mu_r, s_r, _ = stats if stats is not None else load_stats()
    images = torch.as_tensor(images).float()
    n = images.shape[0]
    f, logits = features_and_logits(model, images)
    probs = torch.softmax(logits, dim=1)
    pred = probs.argmax(dim=1)
    names = shapes_data.CLASS_NAMES
    out = {"n": n, "classes": list(names),
           "predicted_histogram": {names[c]: int((pred == c).sum()) for c in range(len(names))}}
    if labels is not None:
        labels = torch.as_tensor(labels).long().reshape(-1)
        if labels.shape[0] != n:
            raise ValueError(f"{labels.shape[0]} labels for {n} images")
        correct = pred == labels
        out["accuracy"] = float(correct.float().mean())
        out["per_class_accuracy"] = {names[c]: (float(correct[labels == c].float().mean())
                                                if (labels == c).any() else None) for c in range(len(names))}
        out["per_class_n"] = {names[c]: int((labels == c).sum()) for c in range(len(names))}
        conf = torch.zeros(len(names), len(names), dtype=torch.int64)
        for a, b in zip(labels.tolist(), pred.tolist()):
            conf[a, b] += 1
        out["confusion"] = conf.tolist()
        out["mean_confidence"] = float(probs[torch.arange(n), labels].mean())
    if n >= 2:
        mu, s = feature_stats(f)
        out["fd"] = frechet_distance(mu, s, mu_r, s_r)
        if floor:
            if labels is not None:
                counts = [int((labels == c).sum()) for c in range(len(names))]
            else:
                counts = [n // len(names) + (1 if c < n % len(names) else 0) for c in range(len(names))]
            real, _ = shapes_data.generate_counts(FLOOR_SEED, counts)
            fr, _ = features_and_logits(model, torch.from_numpy(real))
            mu2, s2 = feature_stats(fr)
            out["fd_real_same_n"] = frechet_distance(mu2, s2, mu_r, s_r)
    return out


# ----------------------------------------------------------------------------------------------------------------

def cmd_train(args):
    torch.set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)
    ckpt = os.path.join(args.work, "classifier.pt")
    torch.manual_seed(args.seed)
    model = ShapesNet()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    step = 0
    if args.resume and os.path.exists(ckpt):
        st = torch.load(ckpt)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        print(f"resumed at step {step}", flush=True)
    t0, last, run = time.time(), time.time(), [0.0, 0.0, 0]
    model.train()
    while step < args.steps:
        x, y = shapes_data.generate_range(args.data_seed, step * args.batch, args.batch, spread="wide")
        g = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
        x = corrupt(torch.from_numpy(x), g)
        y = torch.from_numpy(y)
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for pg in opt.param_groups:
            pg["lr"] = lr
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        run[0] += loss.item()
        run[1] += (logits.argmax(1) == y).float().mean().item()
        run[2] += 1
        if step % 50 == 0 or step == args.steps:
            print(f"step {step} loss {run[0] / run[2]:.4f} acc {run[1] / run[2]:.4f} lr {lr:.2e} "
                  f"{(time.time() - t0) / 60:.1f} min", flush=True)
            run = [0.0, 0.0, 0]
        if time.time() - last > 120 or step == args.steps:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step}, ckpt + ".tmp")
            os.replace(ckpt + ".tmp", ckpt)
            last = time.time()
    model.eval()
    acc = heldout_accuracy(model, args.heldout_n)
    meta = {"format": "blockdance.classifier/1", "model": "shapes-cnn", "class_names": ",".join(shapes_data.CLASS_NAMES),
            "input": "[N,3,32,32] in [-1,1]", "feature_dim": str(FEATURE_DIM), "train_steps": str(step),
            "train_batch": str(args.batch), "train_seed": str(args.seed), "data_seed": str(args.data_seed),
            "heldout_seed": str(HELDOUT_SEED), "heldout_n": str(args.heldout_n),
            "heldout_accuracy": f"{acc['clean']:.4f}", "heldout_accuracy_corrupted": f"{acc['corrupted']:.4f}",
            "heldout_accuracy_narrow": f"{acc['narrow']:.4f}", "train_spread": "wide",
            "trained_by": "tools/shapes_classifier.py"}
    sd = model.state_dict()
    safetensors_io.save_file({k: v.contiguous() for k, v in sd.items()}, args.out, meta)
    print(f"wrote {args.out}; held-out accuracy {acc}", flush=True)
    write_stats(model, args.out, args.stats_out, args.stats_n)
    return 0


@torch.no_grad()
def heldout_accuracy(model, n):
    """Accuracy on held-out images of the wide spread (the training distribution), clean and corrupted, and on clean
    images of the narrow spread (the DiT's data set, what the classifier scores)."""
    x, y = shapes_data.generate_range(HELDOUT_SEED, 0, n, spread="wide")
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    _, logits = features_and_logits(model, x)
    clean = float((logits.argmax(1) == y).float().mean())
    xc = corrupt(x, torch.Generator().manual_seed(12345))
    _, logits = features_and_logits(model, xc)
    corrupted = float((logits.argmax(1) == y).float().mean())
    xn, yn = shapes_data.generate_range(HELDOUT_SEED, 0, n, spread="narrow")
    _, logits = features_and_logits(model, torch.from_numpy(xn))
    narrow = float((logits.argmax(1) == torch.from_numpy(yn)).float().mean())
    return {"clean": clean, "corrupted": corrupted, "narrow": narrow}


def write_stats(model, weights_path, out, n):
    x, _ = shapes_data.generate_balanced(REAL_SEED, n // shapes_data.NUM_CLASSES)
    n = x.shape[0]
    f, _ = features_and_logits(model, torch.from_numpy(x))
    mu, s = feature_stats(f)
    import hashlib
    h = hashlib.sha256(open(weights_path, "rb").read()).hexdigest()
    safetensors_io.save_file({"mu": torch.from_numpy(mu), "sigma": torch.from_numpy(np.ascontiguousarray(s))}, out,
                             {"format": "blockdance.feature-stats/1", "seed": str(REAL_SEED), "n": str(n), "balanced": "true",
                              "spread": "narrow",
                              "classifier_sha256": h, "feature_dim": str(FEATURE_DIM),
                              "made_by": "tools/shapes_classifier.py stats"})
    print(f"wrote {out}: real-feature statistics of {n} images, class-balanced (seed {REAL_SEED})")


def cmd_eval(args):
    torch.set_num_threads(args.threads)
    model, _ = load_classifier(args.weights)
    print(json.dumps(heldout_accuracy(model, args.n)))
    return 0


def cmd_stats(args):
    torch.set_num_threads(args.threads)
    model, _ = load_classifier(args.weights)
    write_stats(model, args.weights, args.out, args.n)
    return 0


def read_images_file(path, tensor=None, labels_tensor="labels"):
    tensors, meta = safetensors_io.load_file(path)
    name = tensor or ("images" if "images" in tensors else "latent" if "latent" in tensors else None)
    if name is None or name not in tensors:
        raise SystemExit(f"{path}: no tensor {tensor or 'images/latent'} (has {', '.join(tensors)})")
    images = tensors[name].float()
    if images.dim() != 4 or tuple(images.shape[1:]) != (3, 32, 32):
        raise SystemExit(f"{path}: tensor {name} has shape {list(images.shape)}, expected [N, 3, 32, 32]")
    labels = tensors.get(labels_tensor)
    return images, labels, meta


def cmd_score(args):
    torch.set_num_threads(args.threads)
    images, labels, _ = read_images_file(args.images, args.tensor, args.labels_tensor)
    model, _ = load_classifier(args.weights)
    res = score_images(images, labels, model=model, stats=load_stats(args.stats), floor=not args.no_floor)
    res["file"] = args.images
    text = json.dumps(res, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("score", help="accuracy and Fréchet distance of images in a safetensors file")
    s.add_argument("--images", required=True)
    s.add_argument("--tensor", default=None, help="image tensor name (default: images, else latent)")
    s.add_argument("--labels-tensor", default="labels")
    s.add_argument("--weights", default=WEIGHTS)
    s.add_argument("--stats", default=STATS)
    s.add_argument("--out", default=None, help="also write the JSON here")
    s.add_argument("--no-floor", action="store_true", help="skip fd_real_same_n")
    s.add_argument("--threads", type=int, default=1)
    t = sub.add_parser("train")
    t.add_argument("--steps", type=int, default=1500)
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--data-seed", type=int, default=DATA_SEED)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--work", default=os.path.join(REPO, ".cache", "shapes-classifier"))
    t.add_argument("--resume", action="store_true")
    t.add_argument("--out", default=WEIGHTS)
    t.add_argument("--stats-out", default=STATS)
    t.add_argument("--stats-n", type=int, default=4096)
    t.add_argument("--heldout-n", type=int, default=4000)
    e = sub.add_parser("eval")
    e.add_argument("--weights", default=WEIGHTS)
    e.add_argument("--n", type=int, default=4000)
    e.add_argument("--threads", type=int, default=1)
    st = sub.add_parser("stats")
    st.add_argument("--weights", default=WEIGHTS)
    st.add_argument("--out", default=STATS)
    st.add_argument("--n", type=int, default=4096)
    st.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    return {"score": cmd_score, "train": cmd_train, "eval": cmd_eval, "stats": cmd_stats}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
