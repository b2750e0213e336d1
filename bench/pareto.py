#!/usr/bin/python3
"""Pareto benchmark of every cache policy (issue 14): each static and adaptive policy at several settings on the
bundled model; MACs saved, measured speed-up, SSIM/PSNR against the uncached image of the same seed, class accuracy and
Fréchet distance; a plot of SSIM against speed-up with one curve per policy.

    /usr/bin/python3 bench/pareto.py [--per-class 8] [--steps 50] [--guidance 4] [--threads 2]

Images come from `blockdance generate` exactly as in bench/quality.py (chunks of 8 images per class, seeds 1000+; every
policy starts from the same noise); every policy runs in this one invocation, one after the other, so the measured
speed-ups are side by side. Results: bench/results/pareto.md, pareto.json, pareto.csv, pareto.png.
Needs Debian's python3-matplotlib (eng/install-deps.sh test).
"""
import argparse, csv, datetime, json, os, sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import quality  # noqa: E402  (generate, the classifier scoring, the model paths)

ROOT = quality.ROOT
RESULTS = os.path.join(ROOT, "bench", "results")


def settings():
    """(family, name, spec): the curves of the plot, each a list of settings in order of aggressiveness."""
    s = [("none", "none", "none")]
    s += [("BlockDance", f"BlockDance-{n}", f"blockdance:n={n}") for n in (2, 3, 4)]
    s += [("DeepCache-style", f"DeepCache-{n}", f"deepcache:n={n}") for n in (2, 3)]
    # BWCache: the paper's rules (latched trigger, δ = 0.15, R = 10 %, computed tail half), then with re-check at several
    # δ: on this model the indicator is ~0.006 at step 1 (the inverted L of images), so any δ above that triggers at once
    # and only a re-check makes δ matter.
    s += [("BWCache", "BWCache paper (δ 0.15)", "bwcache:delta=0.15")]
    s += [("BWCache", f"BWCache δ {d} re-check", f"bwcache:delta={d},recheck=true") for d in (0.04,)]
    s += [("TeaCache", f"TeaCache {t}", f"teacache:threshold={t}") for t in (0.02, 0.05)]
    s += [("FBCache", f"FBCache {t}", f"fbcache:threshold={t}") for t in (0.04, 0.08)]
    return s


def within_run_speedup(report):
    """Speed-up estimated inside one run: steps × the run's mean computed-step time (full or cache steps, every image
    alike) / the run's total time. Every run then carries its own baseline, measured under the same machine load as
    its cached steps, which a loaded shared machine needs (the load changes between runs, not within a step)."""
    computed = [s["ms"] for s in report["steps"] if s["kind"] in ("full", "cache")]
    return len(report["steps"]) * (sum(computed) / len(computed)) / sum(s["ms"] for s in report["steps"])


def interpolate(points, x):
    """SSIM of a curve at speed-up x (linear between its settings, None outside its range)."""
    pts = sorted(points)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 <= x <= x1 and x1 > x0:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-class", type=int, default=8, help="images per class (a multiple of 8)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--guidance", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, meta = quality.safetensors_io.load_file(quality.MODEL)
    depth, classes = int(meta["depth"]), int(meta["num_classes"])
    model, _ = quality.shapes_classifier.load_classifier()
    stats = quality.shapes_classifier.load_stats()
    rows, baseline = [], None
    for family, name, spec in settings():
        print(f"{name} ({spec}) ...", flush=True)
        imgs, labels, ms, report = quality.generate("pareto-" + spec.replace(":", "_").replace(",", "_").replace("=", ""), spec, args, classes)
        clamped = np.clip(imgs, -1, 1)
        score = quality.shapes_classifier.score_images(clamped, labels, model=model, stats=stats, floor=baseline is None)
        row = {"family": family, "name": name, "policy": spec, "plan": report["plan"], "images": int(len(imgs)),
               "total_ms": ms, "macs_saved_fraction": report["macs_saved_fraction"], "ideal_speedup": report["ideal_speedup"],
               "decision_ms": report.get("decision_ms", 0.0), "plans_differ": len(set(report.get("image_plans", [report["plan"]]))) > 1,
               "accuracy": score["accuracy"], "fd": score["fd"], "within_run_speedup": within_run_speedup(report)}
        if baseline is None:
            baseline = (clamped, ms, score)
            row.update(speedup=1.0, ssim=1.0, psnr=float("inf"))
        else:
            row["speedup"] = baseline[1] / ms
            row["ssim"], row["psnr"] = quality.fidelity(baseline[0], clamped)
        rows.append(row)
        print(json.dumps({k: row[k] for k in ("name", "speedup", "ideal_speedup", "ssim", "psnr", "accuracy", "fd")}), flush=True)

    families = [f for f in dict.fromkeys(r["family"] for r in rows) if f != "none"]
    # The plot: SSIM against the measured speed-up (left) and the ideal one from MACs (right), one curve per policy,
    # each curve starting at the uncached point (1, 1).
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for ax, key, title in ((axes[0], "within_run_speedup", "measured speed-up (CPU; within each run, see pareto.md)"),
                           (axes[1], "ideal_speedup", "ideal speed-up (MACs)")):
        for fam in families:
            pts = sorted([(1.0, 1.0)] + [(r[key], r["ssim"]) for r in rows if r["family"] == fam])
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=fam)
        ax.set_xlabel(title)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("SSIM against the uncached image (mean)")
    axes[0].legend()
    fig.suptitle(f"Cache policies on dit-shapes-32: {len(baseline[0])} images, DDIM {args.steps}, guidance {args.guidance}")
    fig.tight_layout()
    os.makedirs(RESULTS, exist_ok=True)
    fig.savefig(os.path.join(RESULTS, "pareto.png"), dpi=110)

    # Who wins at equal speed-up: each curve's SSIM interpolated at common speed-ups.
    targets = [1.2, 1.3, 1.4, 1.5, 1.75, 2.0]
    wins = []
    for key in ("ideal_speedup", "within_run_speedup"):
        for x in targets:
            vals = {fam: interpolate([(1.0, 1.0)] + [(r[key], r["ssim"]) for r in rows if r["family"] == fam], x) for fam in families}
            vals = {k: v for k, v in vals.items() if v is not None}
            if len(vals) >= 2:
                order = sorted(vals.items(), key=lambda kv: -kv[1])
                wins.append({"axis": key, "speedup": x, "ssim": vals, "best": order[0][0], "margin": order[0][1] - order[1][1],
                             "second": order[1][0]})

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = open("/proc/loadavg").read().split()[:3]
    lines = ["# Pareto benchmark: every cache policy at several settings\n",
             f"Machine: {cpu}, {os.cpu_count()} logical CPUs, CPU device, {args.threads} threads; {when}; load average at the end "
             f"{' '.join(load)} (the machine was shared with other builds: measured speed-ups are noisy, the ideal ones exact).\n",
             f"Model: models/dit-shapes-32.safetensors (depth {depth}, {classes} classes). {len(baseline[0])} images "
             f"({args.per_class} per class, seeds 1000+; fewer than bench/results/quality.md's 512 to fit a loaded machine), "
             f"DDIM {args.steps} steps, guidance {args.guidance}, the same noise for every policy, every policy run one after "
             "the other in one invocation of bench/pareto.py. SSIM (Gaussian σ = 1.5) and PSNR against the uncached image "
             "of the same seed on images clamped to [−1, 1]; accuracy and FD (Fréchet distance to real images, lower is "
             "better) from the shapes classifier, as in quality.md. Decision: time the adaptive policies spent on their "
             "indicator and decisions. Plot: pareto.png.\n",
             "Speed-up columns: *ideal* from the MACs saved; *within run* = steps × the run's mean computed-step time / the "
             "run's total time (each run is its own baseline, so the other developers' changing load between runs cancels; "
             "it counts the per-step work outside the blocks and the cache copies, as a wall clock does); *end to end* = "
             "the uncached run's total time / this run's, one after the other in this invocation (distorted by the load).\n",
             "| policy | MACs saved | ideal | within run | end to end | SSIM | PSNR (dB) | accuracy | FD | decision | plan (image 0) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        psnr = "∞" if r["psnr"] == float("inf") else f"{r['psnr']:.2f}"
        dec = f"{r['decision_ms'] / r['total_ms']:.1%}" if r["decision_ms"] else "–"
        lines.append(f"| {r['name']} (`{r['policy']}`) | {r['macs_saved_fraction']:.1%} | {r['ideal_speedup']:.2f}x | "
                     f"{r['within_run_speedup']:.2f}x | {r['speedup']:.2f}x | {r['ssim']:.4f} | {psnr} | {r['accuracy']:.1%} | {r['fd']:.3f} | {dec} | "
                     f"`{r['plan']}`{' (per-image plans differ)' if r['plans_differ'] else ''} |")
    lines += ["", "## SSIM at equal speed-up (linear interpolation along each curve)", "",
              "| axis | speed-up | " + " | ".join(families) + " | best (margin over the second) |",
              "|---|---|" + "---|" * len(families) + "---|"]
    for w in wins:
        cells = " | ".join(f"{w['ssim'][f]:.4f}" if f in w["ssim"] else "–" for f in families)
        lines.append(f"| {'ideal' if w['axis'] == 'ideal_speedup' else 'within run'} | {w['speedup']:.2f}x | {cells} | "
                     f"{w['best']} (+{w['margin']:.4f} over {w['second']}) |")
    with open(os.path.join(RESULTS, "pareto.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    clean = [{k: (None if isinstance(v, float) and v == float("inf") else v) for k, v in r.items()} for r in rows]
    with open(os.path.join(RESULTS, "pareto.json"), "w") as f:
        json.dump({"rows": clean, "equal_speedup": wins, "images": int(len(baseline[0])), "steps": args.steps,
                   "guidance": args.guidance, "when": when, "cpu": cpu, "load": load}, f, indent=2)
    with open(os.path.join(RESULTS, "pareto.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(clean[0].keys()))
        w.writeheader()
        w.writerows(clean)
    print("wrote bench/results/pareto.md, pareto.json, pareto.csv, pareto.png")


if __name__ == "__main__":
    main()
