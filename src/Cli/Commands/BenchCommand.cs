using System.Diagnostics;
using System.Globalization;
using BlockDance.Kernels;
using BlockDance.Runtime;

namespace BlockDance.Cli.Commands;

/// <summary>
/// <c>blockdance bench forward</c>: the model's forward latency after a warm-up, on random inputs of the given batch.
/// The last line is <c>median_ms=&lt;number&gt;</c>, which bench/ scripts parse.
/// </summary>
public sealed class BenchCommand : ICommand
{
    /// <inheritdoc/>
    public CommandSpec Spec { get; } = ModelOptions.AddBundledChoice(ModelOptions.Add(new CommandSpec("bench",
            "Benchmarks. 'bench forward': the model's forward latency (median). 'bench ops': the op harness's perf mode,\n" +
            "every op (or --op) at its DiT-XL/2 shape (or --shape), GB/s and GFLOP/s (CUDA events on a GPU; labelled as\n" +
            "emulated on cuda-emu; 'blockdance test-ops --list' lists the ops and shapes). 'bench ptxas': registers, shared\n" +
            "memory and spills of every kernel from NVRTC for sm_80 and sm_90.",
            "forward|ops|ptxas", "what to measure")))
        .Option("--out", "FILE.md", "ops/ptxas: also write the table (Markdown) to this file")
        .Option("--op", "NAME[,NAME]", "ops: only these ops")
        .Option("--shape", "N,N,...", "ops: this shape instead of the DiT-XL/2 one (needs one --op)")
        .Option("--batch", "B", "batch size in samples (images or clips; 2 = one sample with guidance)", "2")
        .Option("--latent-size", "N", "latent height and width (default: the model's input size)")
        .Option("--repeat", "N", "timed forwards", "10")
        .Option("--warmup", "N", "untimed forwards first", "2")
        .Flag("--profile", "also time every op (synchronizing after each) and print the breakdown");

    /// <inheritdoc/>
    public int Run(ParsedArgs args, Console2 console)
    {
        string what = args.Positionals.Count > 0 ? args.Positionals[0] : throw new UsageException("bench needs what to measure: forward, ops or ptxas");
        switch (what)
        {
            case "forward":
                break;
            case "ops":
                return BenchOps(args, console);
            case "ptxas":
                return BenchPtxas(args, console);
            default:
                throw new UsageException($"unknown benchmark '{what}' (available: forward, ops, ptxas)");
        }
        if (args.Has("--out"))
            throw new UsageException("--out is for 'bench kernels' and 'bench ptxas'; 'bench forward' prints its results");
        int batch = args.Int("--batch", 1, 4096);
        int repeat = args.Int("--repeat", 1, 100000);
        int warmup = args.Int("--warmup", 0, 100000);
        using var s = ModelOptions.Open(ModelOptions.WeightsOrBundled(args), ModelOptions.Read(args), profile: args.Flag("--profile"));
        var c = s.Config;
        int size = args.OptionalInt("--latent-size", 1, 4096) ?? c.InputSize;
        var ops = s.Ops;
        var rng = new Random(0);
        // The model's forward through its pass (image DiT or Latte): latents (B·F, C, H, W), t and labels per sample (B).
        var model = s.Diffusion;
        int frames = model.Frames;
        using var x = ops.Device.FromFloats(Enumerable.Range(0, batch * frames * c.InChannels * size * size).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(),
            ops.ActivationType, batch * frames, c.InChannels, size, size);
        using var t = ops.Device.FromHost<float>(Enumerable.Range(0, batch).Select(i => 500f + i).ToArray(), DType.F32, batch);
        using var y = ops.Device.FromHost<int>(Enumerable.Range(0, batch).Select(i => i % (c.NumClasses + 1)).ToArray(), DType.I32, batch);
        using var output = ops.Device.Allocate(ops.ActivationType, batch * frames, c.OutChannels, size, size);
        using var a = model.CreatePass(batch, size, size);
        void Forward()
        {
            a.Condition(t, y);
            a.EmbedTokens(x);
            a.RunBlocks(0, c.Depth);
            a.Final(output);
        }
        for (int i = 0; i < warmup; i++)
            Forward();
        ops.Device.Synchronize();
        var profiler = ops as ProfilingOps;
        if (profiler is not null)
            profiler.Enabled = false;   // the timed runs are not profiled; a separate pass below is
        var times = new double[repeat];
        for (int i = 0; i < repeat; i++)
        {
            console.Cancellation.ThrowIfCancellationRequested();
            long start = Stopwatch.GetTimestamp();
            Forward();
            ops.Device.Synchronize();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        Array.Sort(times);
        double median = repeat % 2 == 1 ? times[repeat / 2] : (times[repeat / 2 - 1] + times[repeat / 2]) / 2;
        var macs = new Dit.MacCount(c, c.Tokens(size, size)).Forward * batch;
        var ci = CultureInfo.InvariantCulture;
        console.Out.WriteLine(string.Create(ci, $"model {c}; batch {batch}{(frames > 1 ? $" clips of {frames} frames" : "")}, latent {size}×{size}, device {ops.Device.Name}, threads {Kernels.Cpu.CpuOps.Threads}"));
        console.Out.WriteLine(string.Create(ci, $"activation_bytes={a.Bytes} scratch_bytes={(Unwrap(ops) as Kernels.Cpu.CpuOps)?.ScratchBytes ?? 0} weights_resident_copies_bytes={model.OwnedBytes}"));
        console.Out.WriteLine(string.Create(ci, $"forward: min {times[0]:F2} ms, median {median:F2} ms, max {times[^1]:F2} ms over {repeat} runs; {macs / 1e9:F2} GMAC → {macs * 2 / median / 1e6:F1} GFLOP/s"));
        if (Unwrap(ops) is Kernels.Cpu.CpuOps cpu)
            console.Out.WriteLine(string.Create(ci, $"gemm={(cpu.PackWeights ? "packed" : "openblas")} packed_weight_bytes={cpu.PackedWeightBytes} packed_weight_ms={cpu.PackMilliseconds:F1}"));
        if (profiler is not null)
        {
            profiler.Reset();
            profiler.Enabled = true;
            for (int i = 0; i < repeat; i++)
                Forward();
            double total = profiler.Totals.Sum(p => p.Milliseconds);
            console.Out.WriteLine($"{"op",-22} {"ms/forward",11} {"share",7} {"calls",7}");
            foreach (var (op, ms, calls) in profiler.Totals)
                console.Out.WriteLine(string.Create(ci, $"{op,-22} {ms / repeat,11:F2} {ms / total,7:P1} {calls / repeat,7}"));
            double gemm = profiler.Totals.Where(p => p.Op.StartsWith("Linear", StringComparison.Ordinal) || p.Op == "Attention").Sum(p => p.Milliseconds);
            console.Out.WriteLine(string.Create(ci, $"gemm_share={gemm / total:F4}  (Linear and attention of the op total)"));
            console.Out.WriteLine($"{"product M×N×K",-22} {"activation",-10} {"ms/forward",11} {"GFLOP/s",9} {"calls",7}");
            foreach (var (m, n, k, act, ms, calls) in profiler.ProductTotals)
                console.Out.WriteLine(string.Create(ci, $"{$"{m}×{n}×{k}",-22} {act,-10} {ms / repeat,11:F3} {2.0 * m * n * k * calls / ms / 1e6,9:F1} {calls / repeat,7}"));
            // OpenBLAS alone on the forward's products: the speed limit of the OpenBLAS path (issue 7); the packed GEMM
            // has the roofline of bench/cpu_bench.py forward instead (issue 16).
            if (ops.Device.IsHostMemory && Unwrap(ops) is Kernels.Cpu.CpuOps { PackWeights: false })
            {
                var shapes = profiler.GemmShapes.Take(profiler.GemmShapes.Count / repeat).ToList();
                double sgemm = Kernels.Cpu.SgemmBaseline.Measure(shapes, repeat);
                double cold = Kernels.Cpu.SgemmBaseline.Measure(shapes, repeat, distinctOperands: true);
                console.Out.WriteLine(string.Create(ci, $"sgemm_only_ms={sgemm:F3}  (OpenBLAS alone on the forward's {shapes.Count} products, operands shared: in cache)"));
                console.Out.WriteLine(string.Create(ci, $"sgemm_distinct_ms={cold:F3}  (the same with every product's own operands, as in the forward)"));
                console.Out.WriteLine(string.Create(ci, $"sgemm_efficiency={sgemm / median:F4}  (sgemm-only time / forward time)"));
                console.Out.WriteLine(string.Create(ci, $"sgemm_distinct_efficiency={cold / median:F4}  (sgemm-distinct time / forward time)"));
            }
        }
        console.Out.WriteLine(string.Create(ci, $"median_ms={median:F3}"));
        return 0;
    }

    private static int BenchOps(ParsedArgs args, Console2 console)
    {
        PrepareTable(args);
        var (cases, shape) = OpBench.Select(args);
        using var ops = Backends.Open(args.RequiredString("--device"), args.Int("--threads", 0, 1024), args.Choice("--dtype", DTypes.ParseActivationType));
        string table = OpBench.Run(ops, cases, shape, args.Int("--repeat", 1, 100000), console.Err);
        Emit(args, console, "# Op benchmark\n\n" + table);
        return 0;
    }

    private static int BenchPtxas(ParsedArgs args, Console2 console)
    {
        PrepareTable(args);
        var nvrtc = Runtime.Cuda.NvrtcCompiler.TryLoad() ?? throw new NotSupportedException("NVRTC is not installed (Debian: libnvrtc11.2 from non-free; eng/install-deps.sh test)");
        var sb = new System.Text.StringBuilder();
        sb.AppendLine("# Kernel resources from ptxas\n");
        sb.AppendLine(CultureInfo.InvariantCulture, $"NVRTC {nvrtc.Version.Major}.{nvrtc.Version.Minor} ({nvrtc.LibraryPath}), `--ptxas-options=-v`, every kernel of src/Kernels/cuda. Regenerate: `./blockdance bench ptxas --out bench/results/kernels-ptxas.md`.\n");
        sb.AppendLine("| kernel | arch | registers | static smem (B) | stack (B) | spill stores (B) | spill loads (B) |");
        sb.AppendLine("|---|---|---|---|---|---|---|");
        foreach (string arch in new[] { "sm_80", "sm_90" })
            foreach (var e in Kernels.Cuda.PtxasReport.Collect(nvrtc, arch))
                sb.AppendLine(CultureInfo.InvariantCulture, $"| {e.Kernel} | {e.Architecture} | {e.Registers} | {e.SharedBytes} | {e.StackBytes} | {e.SpillStoreBytes} | {e.SpillLoadBytes} |");
        Emit(args, console, sb.ToString());
        return 0;
    }

    private static void PrepareTable(ParsedArgs args)
    {
        if (args.String("--out") is string path)
            Outputs.Prepare(path, "--out", ".md", "the table (Markdown)");
    }

    private static IOps Unwrap(IOps ops) => ops is ProfilingOps p ? p.Inner : ops;

    private static void Emit(ParsedArgs args, Console2 console, string text)
    {
        console.Out.Write(text);
        if (args.String("--out") is string path)
            Runtime.IO.AtomicFile.WriteText(path, w => w.Write(text));
    }
}
