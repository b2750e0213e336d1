#!/usr/bin/python3
"""CPU benchmarks of the project; each writes a Markdown table to bench/results/ with the machine and the date.

  bench/cpu_bench.py forward [--rounds 5]   DiT-S/2 and DiT-B/2 at 256x256 (32x32 latent), batch 2: the CPU device's forward
                                            latency next to ONNX Runtime (bench/CpuBench, bench/ort_export.py; issue 16), the
                                            device with OpenBLAS, and Debian's PyTorch, same weights and threads, run
                                            alternately, with both op profiles and the roofline (peak FMA, bandwidth)
  bench/cpu_bench.py cache [--steps 50]     DiT-B/2 256x256, batch 2 (one image with guidance), DDIM 50: measured speed-up of
                                            BlockDance N=2,3,4 and DeepCache-style N=2 against no cache, next to the ideal
                                            speed-up implied by the MACs saved (issue 3)
  bench/cpu_bench.py memory                 peak resident memory of loading a DiT-XL/2 checkpoint (2.7 GB fp32) and running one
                                            forward, against the file size plus the activations (issue 7)

Random-weight checkpoints are written once to bench/work/ (git-ignored) by tools/make_random_checkpoint.py.
"""
import argparse, datetime, json, os, platform, re, statistics, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "bench", "work")
RESULTS = os.path.join(ROOT, "bench", "results")
PY = "/usr/bin/python3"


def run(cmd, env=None, **kw):
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, **kw)
    if r.returncode != 0:
        sys.exit(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r.stdout


def blockdance(*args):
    return run([os.path.join(ROOT, "blockdance"), *args])


def checkpoint(preset, layout="original"):
    os.makedirs(WORK, exist_ok=True)
    path = os.path.join(WORK, f"dit-{preset.replace('/', '').lower()}.safetensors")
    if not os.path.exists(path):
        run([PY, "tools/make_random_checkpoint.py", "--preset", preset, "--layout", layout, "--out", path])
    return path


def machine():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    torch = run([PY, "-c", "import torch; print(torch.__version__)"]).strip()
    dotnet = run(["dotnet", "--version"]).strip()
    load = os.getloadavg()
    return (f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}; .NET SDK {dotnet}, "
            f"PyTorch {torch} (Debian); load average before the run {load[0]:.2f}; "
            f"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")


def median_ms(text):
    return float(re.findall(r"^median_ms=([0-9.]+)", text, re.M)[-1])


def write(name, text):
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, name)
    with open(path, "w") as f:
        f.write(text)
    print(f"wrote {path}")


CPUBENCH = os.path.join(ROOT, "artifacts", "bin", "CpuBench", "release", "CpuBench")


def cpubench(*args, env=None):
    return run([CPUBENCH, *args], env=env)


def onnx_model(preset, weights):
    """The checkpoint exported to ONNX once by bench/ort_export.py (bench dependency: python3-onnx)."""
    path = weights.replace(".safetensors", ".onnx")
    if not os.path.exists(path) or not os.path.exists(path + ".io.safetensors"):
        run([PY, "bench/ort_export.py", "--weights", weights, "--out", path])
    return path


def load():
    return open("/proc/loadavg").read().split()[0]


def analytic_work(preset):
    """FLOPs of attention and bytes of the memory-bound row-wise ops for a DiT preset at 32x32, batch 2 (the products'
    work comes from the profile's per-product table: product_rows)."""
    depth, d = {"S/2": (12, 384), "B/2": (12, 768), "L/2": (24, 1024), "XL/2": (28, 1152)}[preset]
    b, t = 2, 256
    m = b * t
    attention = depth * b * 4 * t * t * d
    ln_bytes = (2 * depth + 1) * 2 * m * d * 4
    gated_bytes = 2 * depth * 3 * m * d * 4
    return {"Attention": attention}, {"LayerNormModulate": ln_bytes, "GatedResidualAdd": gated_bytes}


def product_rows(text):
    """The per-product table of `bench forward --profile`: (M, N, K, activation, ms per forward, calls per forward)."""
    rows = []
    for line in text.splitlines():
        mm = re.match(r"^(\d+)×(\d+)×(\d+)\s+(\w+)\s+([0-9.]+)\s+[0-9.]+\s+(\d+)$", line.strip())
        if mm:
            rows.append((int(mm.group(1)), int(mm.group(2)), int(mm.group(3)), mm.group(4), float(mm.group(5)), int(mm.group(6))))
    return rows


def product_roofline(preset, rows, peak, bw):
    """Roofline rows of the products: those of the tokens (M > 8) against the FMA peak, one per activation; those of one
    row block (M = 2 at batch 2: the modulation GEMVs and the embeddings) against the read bandwidth, as they read each
    weight once for two rows."""
    out = []
    for act, label in (("None", "Linear, M > 8 (qkv, proj, fc2, patch embedding, final)"), ("GeluTanh", "Linear+GeluTanh, M > 8 (fc1)")):
        sel = [r for r in rows if r[0] > 8 and r[3] == act]
        if sel:
            ms = sum(r[4] for r in sel)
            f = sum(2 * r[0] * r[1] * r[2] * r[5] for r in sel)
            g = f / ms / 1e6
            out.append(f"| DiT-{preset} | {label} | {ms:.2f} | {f / 1e9:.2f} GFLOP | {g:.1f} GFLOP/s | {g / peak:.1%} of FMA peak |")
    sel = [r for r in rows if r[0] <= 8]
    if sel:
        ms = sum(r[4] for r in sel)
        by = sum(4 * r[1] * r[2] * r[5] for r in sel)
        gb = by / ms / 1e6
        out.append(f"| DiT-{preset} | Linear, M ≤ 8 (modulation GEMVs, embeddings) | {ms:.2f} | {by / 1e6:.1f} MB of weights | {gb:.1f} GB/s | {gb / bw:.1%} of read bandwidth |")
    return out


def profile_rows(text, prefix=""):
    rows = {}
    for line in text.splitlines():
        mm = re.match(r"^(\S+)\s+([0-9.]+)\s+([0-9.]+) ?%\s+(\d+)$", line.strip())
        if mm and not line.startswith(("op ", "ort op")):
            rows[mm.group(1)] = float(mm.group(2))
    return rows


def forward(args):
    dotnet = run(["dotnet", "build", "bench/CpuBench", "-c", "Release", "-v", "q", "-nologo"])  # noqa: F841
    blockdance("--version")  # builds the tool if needed
    peak_text = cpubench("peak", "--threads", str(args.threads))
    peak = float(re.search(r"peak_fma_gflops=([0-9.]+)", peak_text).group(1))
    bw = float(re.search(r"read_bandwidth_gbs=([0-9.]+)", peak_text).group(1))
    rows, details, roofline = [], [], []
    for preset in args.presets:
        w = checkpoint(preset)
        onnx = onnx_model(preset, w)
        check = cpubench("check", "--onnx", onnx, "--weights", w, "--threads", str(args.threads))
        common = ["bench", "forward", "--weights", w, "--threads", str(args.threads), "--repeat", str(args.repeat), "--warmup", "10"]
        ours, ort, blas, torch_fast, loads = [], [], [], [], []
        prof = ort_prof = ""
        for r in range(args.rounds):
            last = r == args.rounds - 1
            loads.append(load())
            # Alternating, one process each: ours (packed GEMM), ONNX Runtime, ours with OpenBLAS, PyTorch.
            out = blockdance(*common, *(["--profile"] if last else []))
            ours.append(median_ms(out))
            if last:
                prof = out
            out = cpubench("time", "--onnx", onnx, "--threads", str(args.threads), "--repeat", str(args.repeat), "--warmup", "10",
                           *(["--profile"] if last else []))
            ort.append(median_ms(out))
            if last:
                ort_prof = out
            if not args.no_openblas:
                blas.append(median_ms(run([os.path.join(ROOT, "blockdance"), *common], env=dict(os.environ, BLOCKDANCE_CPU_GEMM="openblas"))))
            if not args.no_torch:
                torch_fast.append(median_ms(run([PY, "tools/bench_torch_forward.py", "--weights", w, "--threads", str(args.threads),
                                                 "--repeat", str(args.repeat), "--warmup", "10", "--impl", "fast"])))
            print(f"DiT-{preset} round {r + 1}: load {loads[-1]}, ours {ours[-1]:.1f}, ORT {ort[-1]:.1f}"
                  + (f", ours+OpenBLAS {blas[-1]:.1f}" if blas else "")
                  + (f", PyTorch {torch_fast[-1]:.1f}" if torch_fast else ""), flush=True)
        ratios = [o / t for o, t in zip(ours, ort)]
        o, t = statistics.median(ours), statistics.median(ort)
        bl = f"{statistics.median(blas):.1f}" if blas else "—"
        tf = f"{statistics.median(torch_fast):.1f}" if torch_fast else "—"
        packed = int(re.search(r"packed_weight_bytes=(\d+)", prof).group(1))
        pack_ms = float(re.search(r"packed_weight_ms=([0-9.]+)", prof).group(1))
        rows.append(f"| DiT-{preset} | {o:.1f} | {t:.1f} | **{statistics.median(ratios):.3f}** ({min(ratios):.3f}–{max(ratios):.3f}) | "
                    f"{bl} | {tf} | {packed / 2**20:.0f} MiB, {pack_ms:.0f} ms |")
        print(rows[-1], flush=True)
        flops, bytes_ = analytic_work(preset)
        ms = profile_rows(prof)
        roofline.extend(product_roofline(preset, product_rows(prof), peak, bw))
        for op, f in flops.items():
            if op in ms and ms[op] > 0:
                g = f / ms[op] / 1e6
                roofline.append(f"| DiT-{preset} | {op} | {ms[op]:.2f} | {f / 1e9:.2f} GFLOP | {g:.1f} GFLOP/s | {g / peak:.1%} of FMA peak |")
        for op, by in bytes_.items():
            if op in ms and ms[op] > 0:
                gb = by / ms[op] / 1e6
                roofline.append(f"| DiT-{preset} | {op} | {ms[op]:.2f} | {by / 1e6:.1f} MB | {gb:.1f} GB/s | {gb / bw:.1%} of read bandwidth |")
        details.append(f"<details><summary>DiT-{preset}: every round, the output check and both profiles</summary>\n\n"
                       f"load average (1 min) before each round: {', '.join(loads)}\n\n"
                       f"ours (packed GEMM): {', '.join(f'{v:.1f}' for v in ours)}; ONNX Runtime: {', '.join(f'{v:.1f}' for v in ort)}; "
                       f"ours / ORT per round: {', '.join(f'{v:.3f}' for v in ratios)}"
                       + (f"; ours with OpenBLAS: {', '.join(f'{v:.1f}' for v in blas)}" if blas else "")
                       + (f"; PyTorch fast: {', '.join(f'{v:.1f}' for v in torch_fast)}" if torch_fast else "") + "\n\n"
                       f"Output check (`CpuBench check`, inputs and PyTorch output saved by bench/ort_export.py):\n\n```\n{check.strip()}\n```\n\n"
                       f"Our last round (`blockdance bench forward --profile`):\n\n```\n{prof.strip()}\n```\n\n"
                       f"ONNX Runtime's last round (`CpuBench time --profile`, ORT's own per-node profiler):\n\n```\n{ort_prof.strip()}\n```\n</details>\n")
    m = machine()
    ort_version = re.search(r"onnxruntime (\S+),", ort_prof).group(1) if ort_prof else "?"
    head = ["# CPU forward latency: BlockDance CPU device vs ONNX Runtime (and PyTorch)\n",
            f"Machine: {m}; ONNX Runtime {ort_version} (NuGet Microsoft.ML.OnnxRuntime, CPU provider)\n",
            f"Batch 2 (one image with guidance), 32x32 latent (256x256 images), fp32, {args.threads} threads on every side "
            f"(ORT: IntraOpNumThreads = {args.threads}, sequential, all graph optimisations), same random weights "
            f"(tools/make_random_checkpoint.py; ORT runs bench/ort_export.py's opset-17 export of the same checkpoint); "
            f"{args.rounds} alternating rounds of (ours, ORT" + ("" if args.no_openblas else ", ours with OpenBLAS")
            + (", PyTorch fast" if not args.no_torch else "") + f"), one process each, each the median of {args.repeat} timed "
            "forwards after 10 warm-ups; the table shows medians over rounds, and the ratio's median (min–max) over rounds. "
            "Goal of issue 16: ours / ORT ≤ 0.85. The machine is shared: the load average before each round is listed; "
            "absolute times move with it, the alternating ratio much less.\n",
            "| model | ours ms | ONNX Runtime ms | ours / ORT | ours with OpenBLAS ms | PyTorch fast ms | packed weights (memory, one-time cost) |",
            "|---|---|---|---|---|---|---|"]
    roof = ["\n## Roofline\n",
            f"`CpuBench peak --threads {args.threads}` (bench/CpuBench/Peak.cs), best of 5 at the start of the run: "
            f"**{peak:.1f} GFLOP/s** peak FMA rate, **{bw:.1f} GB/s** memory read bandwidth.\n\n"
            "```\n" + peak_text.strip() + "\n```\n",
            "Each op's achieved rate in the last round's profile (FLOPs counted from the shapes: 2·M·N·K per product, "
            "summed over the profile's per-product table, 4·T²·D per image and block for attention; bytes: a product of "
            "M ≤ 8 rows reads its weight, N·K floats, LayerNormModulate reads x and writes y, GatedResidualAdd reads x and h "
            "and writes x; the small modulation vectors are left out):\n",
            "| model | op | ms/forward | work | achieved | of the roofline |", "|---|---|---|---|---|---|"] + roofline
    write("forward-cpu.md", "\n".join(head + rows) + "\n" + "\n".join(roof) + "\n\n" + "\n".join(details))


def cache(args):
    w = checkpoint("B/2")
    policies = ["blockdance:n=2", "blockdance:n=3", "blockdance:n=4", "deepcache:n=2"]
    lines = ["# Cache policies on the CPU device: measured vs ideal speed-up\n",
             f"Machine: {machine()}\n",
             f"DiT-B/2 (random weights), 32x32 latent (256x256), batch 2 (one image with guidance 4), DDIM {args.steps} steps, seed 0, "
             f"{args.threads} threads. Each row runs the same seed without and with the policy (`blockdance compare --repeat {args.repeat}`, "
             "the fastest of the alternating runs each). Ideal = the speed-up if time were proportional to the MACs computed. "
             "Goal of issue 3: measured ≥ 0.95 × ideal. SSIM/PSNR are on the final latents of random weights, not a quality measure.\n",
             "| policy | plan | MACs saved | ideal | measured | measured / ideal | no cache ms | cached ms | rel. L2 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for p in policies:
        report = os.path.join(WORK, f"compare-{p.replace(':', '-').replace('=', '')}.json")
        blockdance("compare", "--weights", w, "--labels", "1", "--steps", str(args.steps), "--cache", p, "--threads", str(args.threads),
                   "--repeat", str(args.repeat), "--quiet", "--report", report)
        r = json.load(open(report))
        lines.append(f"| `{p}` | `{r['plan']}` | {r['macs_saved_fraction']:.1%} | {r['ideal_speedup']:.3f}x | {r['speedup']:.3f}x | "
                     f"{r['speedup'] / r['ideal_speedup']:.3f} | {r['baseline_ms']:.0f} | {r['cached_ms']:.0f} | {r['relative_l2']:.2e} |")
        print(lines[-1], flush=True)
    write("cache-speedup-cpu.md", "\n".join(lines) + "\n")


def peak_rss_kib(weights, threads):
    # Tiered compilation off in every run: otherwise the longer runs (bigger models) also hold the background JIT's
    # tier-1 code and state and the shorter ones do not (measured: ~3 MiB between an XL/2 and a one-block run).
    env = dict(os.environ, DOTNET_TieredCompilation="0")
    r = subprocess.run(["/usr/bin/time", "-v", "dotnet", os.path.join(ROOT, "artifacts/bin/BlockDance.Cli/release/blockdance.dll"),
                        "bench", "forward", "--weights", weights, "--repeat", "1", "--warmup", "0", "--threads", str(threads)],
                       cwd=ROOT, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(r.stdout + r.stderr)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1))
    act = int(re.search(r"activation_bytes=(\d+)", r.stdout).group(1)) + int(re.search(r"scratch_bytes=(\d+)", r.stdout).group(1))
    copies = int(re.search(r"weights_resident_copies_bytes=(\d+)", r.stdout).group(1))
    # The packed GEMM's weight copies (issue 16) are memory the forward needs, like the activations: counted with them.
    packed = re.search(r"packed_weight_bytes=(\d+)", r.stdout)
    act += int(packed.group(1)) if packed else 0
    return rss, act, copies


def one_block_copy(w):
    """The same checkpoint with only block 0 (config inference reads the depth from the keys): its process has the
    same embedders, final layer, GEMM shapes and OpenBLAS buffers as the full model, so the difference between the two
    runs is what the other blocks cost."""
    out = w.replace(".safetensors", "-depth1.safetensors")
    if not os.path.exists(out):
        run([PY, "-c", "import sys, re; sys.path.insert(0, 'tools'); import safetensors_io as s; "
             f"h = s.read_header({w!r}); names = [n for n in h[0] if not re.match(r'blocks\\.([1-9]|[1-9][0-9])\\.', n)]; "
             f"t, m = s.load_file({w!r}, names); s.save_file(t, {out!r}, m)"])
    return out


def memory(args):
    w = checkpoint("XL/2")
    size = os.path.getsize(w)
    blockdance("--version")  # builds the tool if needed
    base_rss, base_act, _ = peak_rss_kib(os.path.join(ROOT, "tests/fixtures/dit_tiny_original.safetensors"), args.threads)
    rss, act, copies = peak_rss_kib(w, args.threads)
    one = one_block_copy(w)
    one_size = os.path.getsize(one)
    one_rss, one_act, _ = peak_rss_kib(one, args.threads)
    over = rss * 1024 - base_rss * 1024
    marginal = (rss - one_rss) * 1024
    marginal_bound = (size - one_size) + (act - one_act)
    lines = ["# Peak memory of loading a DiT-XL/2 checkpoint on the CPU device\n",
             f"Machine: {machine()}\n",
             "The checkpoint is fp32 in the original layout, so every weight is a view of the memory-mapped file "
             f"(weights copied into the process: {copies} bytes). Peak RSS from `/usr/bin/time -v` of "
             "`blockdance bench forward --repeat 1 --warmup 0` at batch 2, 32x32 latent, with `DOTNET_TieredCompilation=0` so that "
             "every run holds the same JIT state whatever its length. Activations include the packed weight copies of the CPU device's GEMM (issue 16; `BLOCKDANCE_CPU_GEMM=openblas` leaves them out) and the CPU "
             "attention's scratch (keys transposed and values packed, 2·B·T·D floats). Goal of issue 7: at most the "
             "checkpoint's size plus the activations.\n",
             "Two ways to take out what the process costs without any model (the .NET runtime, the JIT, OpenBLAS's buffers): "
             "(1) subtract the peak of the same command on the 0.4 MB test model — this also counts, against the model, "
             "the OpenBLAS packing buffers that only large products touch; (2) subtract the peak of the same checkpoint cut "
             "to its first block (same embedders, final layer and product shapes), and compare with what the other 27 "
             "blocks add to the file and to the activations. What remains above 1.000 is anonymous memory that grows with "
             "the number of tensors (the model's own objects: tensor views, blocks; well under 1 MiB for 27 blocks): in "
             "/proc/PID/smaps of running XL/2 and one-block processes the file mapping's resident sizes differ by exactly "
             "the files' difference, and the anonymous memory by 0.3 MiB.\n",
             "| checkpoint | activations | bound (sum) | peak RSS | (1) floor: tiny model | peak − floor | / bound |",
             "|---|---|---|---|---|---|---|",
             f"| {size / 2**20:.0f} MiB | {act / 2**20:.1f} MiB | {(size + act) / 2**20:.0f} MiB | {rss / 1024:.0f} MiB | "
             f"{base_rss / 1024:.0f} MiB | {over / 2**20:.1f} MiB | {over / (size + act):.4f} |",
             "",
             "| (2) one-block checkpoint | its peak RSS | blocks 1–27: file + activations | peak difference | / bound |",
             "|---|---|---|---|---|",
             f"| {one_size / 2**20:.0f} MiB | {one_rss / 1024:.0f} MiB | {marginal_bound / 2**20:.1f} MiB | "
             f"{marginal / 2**20:.1f} MiB | {marginal / marginal_bound:.4f} |"]
    print("\n".join(lines[-6:]))
    write("memory-cpu.md", "\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    f = sub.add_parser("forward"); f.add_argument("--rounds", type=int, default=5); f.add_argument("--repeat", type=int, default=5)
    f.add_argument("--no-torch", action="store_true", help="leave PyTorch out of the rounds")
    f.add_argument("--no-openblas", action="store_true", help="leave the OpenBLAS variant of our forward out of the rounds")
    f.add_argument("--presets", nargs="+", default=["S/2", "B/2"])
    c = sub.add_parser("cache"); c.add_argument("--steps", type=int, default=50); c.add_argument("--repeat", type=int, default=2)
    m = sub.add_parser("memory")
    for p in (f, c, m):
        p.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    {"forward": forward, "cache": cache, "memory": memory}[args.what](args)


if __name__ == "__main__":
    main()
