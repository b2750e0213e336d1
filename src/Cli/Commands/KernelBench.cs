using System.Diagnostics;
using System.Globalization;
using System.Text;
using BlockDance.Kernels;
using BlockDance.Runtime;
using BlockDance.Runtime.Cuda;

namespace BlockDance.Cli.Commands;

/// <summary>
/// Times every op of the backend once per shape on realistic DiT-XL/2 shapes (batch 2 = one image with guidance, 256×256
/// → T = 256 tokens, D = 1152, 16 heads): device events on CUDA, the wall clock on the CPU. Reports napkin-math memory
/// traffic (GB/s) and arithmetic (GFLOP/s) against the device's peak where its attributes give one. On the emulator the
/// figures measure the CPU emulation and are labelled as such.
/// </summary>
internal static class KernelBench
{
    private const int B = 2, T = 256, D = 1152, H = 16, P = 2, C = 4, Latent = 32;

    public static string Run(IOps ops, int repeat, TextWriter progress)
    {
        var dev = ops.Device;
        var type = ops.ActivationType;
        int e = type.SizeOf();
        var owned = new List<Tensor>();
        Tensor New(params int[] shape)
        {
            var t = dev.Allocate(type, shape);
            owned.Add(t);
            var rng = new Random(owned.Count);
            var values = new float[t.Count];
            for (int i = 0; i < values.Length; i++)
                values[i] = (float)(rng.NextDouble() - 0.5);
            using var src = dev.FromFloats(values, type, shape);
            dev.Copy(src, t);
            return t;
        }
        var rows = new List<(string Op, string Shape, double Ms, double Bytes, double Flops)>();
        try
        {
            var x = New(B, T, D); var y = New(B, T, D); var h = New(B, T, D);
            var qkv = New(B, T, 3 * D); var hidden = New(B, T, 4 * D);
            var wQkv = New(3 * D, D); var bQkv = New(3 * D); var wFc1 = New(4 * D, D); var bFc1 = New(4 * D);
            var mod = New(B, 6 * D);
            var img = New(B, C, Latent, Latent); var cols = New(B, T, C * P * P);
            var patches = New(B, T, P * P * 2 * C); var outImg = New(B, 2 * C, Latent, Latent);
            var guided = New(1, 2 * C, Latent, Latent); var latent = New(1, C, Latent, Latent); var noise = New(1, C, Latent, Latent);
            var freq = New(B, 256); var cond = New(B, D); var table = New(1001, D); var pos = New(T, D);
            using var t = dev.FromHost<float>([999f, 999f], DType.F32, B);
            using var ids = dev.FromHost<int>([7, 1000], DType.I32, B);
            var ddim = new DdimCoefficients(1.1f, 0.4f, 0.9f, 0.3f, 0f, true);
            var ancestral = new AncestralCoefficients(1.1f, 0.4f, 0.3f, 0.6f, -6f, -4f, 1f);
            double Act(long n) => (double)n * e;
            void Add(string op, string shape, double bytes, double flops, Action run)
            {
                progress.Write($"\r{op,-28}");
                run();  // warm-up: module load, workspace growth
                double ms = Time(ops, run, repeat);
                rows.Add((op, shape, ms, bytes, flops));
            }
            long btd = (long)B * T * D;
            Add("Linear qkv", $"{B * T}×{3 * D}×{D}", Act(btd + 3L * D * D + B * T * 3L * D), 2.0 * B * T * 3 * D * D, () => ops.Linear(x, wQkv, bQkv, qkv));
            Add("Linear fc1 + GELU", $"{B * T}×{4 * D}×{D}", Act(btd + 4L * D * D + B * T * 4L * D), 2.0 * B * T * 4 * D * D, () => ops.Linear(x, wFc1, bFc1, hidden, Activation.GeluTanh));
            Add("Attention", $"B{B} T{T} H{H} Dh{D / H}", Act(B * T * 3L * D + btd), 4.0 * B * T * T * D, () => ops.Attention(qkv, H, y));
            Add("LayerNormModulate", $"{B * T}×{D}", Act(2 * btd + 2L * B * D), 8.0 * btd, () => ops.LayerNormModulate(x, mod, 0, 1, 1e-6f, y));
            Add("GatedResidualAdd", $"{B * T}×{D}", Act(3 * btd), 2.0 * btd, () => ops.GatedResidualAdd(x, h, mod, 2));
            Add("Silu", $"{B}×{D}", Act(2L * B * D), 4.0 * B * D, () => ops.Silu(cond, cond));
            Add("Add", $"{B * T}×{D}", Act(3 * btd), btd, () => ops.Add(x, h, y));
            Add("Patchify", $"{B}×{C}×{Latent}×{Latent}, p{P}", Act(2L * B * C * Latent * Latent), 0, () => ops.Patchify(img, P, cols));
            Add("AddPositionEmbedding", $"{B * T}×{D}", Act(2 * btd + (long)T * D), btd, () => ops.AddPositionEmbedding(x, pos));
            Add("Unpatchify", $"{B}×{2 * C}×{Latent}×{Latent}, p{P}", Act(2L * B * 2 * C * Latent * Latent), 0, () => ops.Unpatchify(patches, P, outImg));
            Add("TimestepEmbedding", $"{B}×256", 4.0 * B + Act(B * 256L), 20.0 * B * 256, () => ops.TimestepEmbedding(t, 0, freq));
            Add("EmbeddingLookup", $"{B}×{D} of 1001", Act(2L * B * D), 0, () => ops.EmbeddingLookup(table, ids, cond));
            Add("GuidanceCombine", $"1×{2 * C}×{Latent}×{Latent}", Act(3L * 2 * C * Latent * Latent), 3.0 * C * Latent * Latent, () => ops.GuidanceCombine(outImg, 3, 4f, guided));
            Add("DdimStep", $"1×{C}×{Latent}×{Latent}", Act(3L * C * Latent * Latent), 10.0 * C * Latent * Latent, () => ops.DdimStep(latent, guided, ddim, null));
            Add("AncestralStep", $"1×{C}×{Latent}×{Latent}", Act(5L * C * Latent * Latent), 20.0 * C * Latent * Latent, () => ops.AncestralStep(latent, guided, ancestral, noise));
            Add("RandomNormal", $"1×{C}×{Latent}×{Latent}", Act((long)C * Latent * Latent), 0, () => ops.RandomNormal(noise, 1, 0));
            progress.Write("\r" + new string(' ', 40) + "\r");
        }
        finally
        {
            foreach (var o in owned)
                o.Dispose();
        }

        var (peakGBs, peakTflops, label) = Peaks(dev);
        var sb = new StringBuilder();
        var ci = CultureInfo.InvariantCulture;
        sb.AppendLine(ci, $"device: {Describe(dev)}; activations {type.ShortName()}; {label}");
        sb.AppendLine(ci, $"shapes: DiT-XL/2 at 256×256, batch {B} (one image with guidance): T = {T}, D = {D}, {H} heads; median of {repeat} runs");
        sb.AppendLine();
        sb.AppendLine("| op | shape | time (ms) | GB/s | GFLOP/s | % of peak |");
        sb.AppendLine("|---|---|---|---|---|---|");
        foreach (var (op, shape, ms, bytes, flops) in rows)
        {
            double gbs = bytes / ms / 1e6, gflops = flops / ms / 1e6;
            string share = peakGBs > 0 && peakTflops > 0 ? (flops / bytes > 20 ? $"{gflops / (peakTflops * 1e3):P1} of FLOP/s" : $"{gbs / peakGBs:P1} of bandwidth") : "n/a";
            sb.AppendLine(ci, $"| {op} | {shape} | {ms:F4} | {gbs:F1} | {(flops > 0 ? gflops.ToString("F1", ci) : "-")} | {share} |");
        }
        return sb.ToString();
    }

    private static double Time(IOps ops, Action run, int repeat)
    {
        var times = new double[repeat];
        if (ops.Device is CudaDevice cuda)
        {
            using var timer = new CudaTimer(cuda);
            for (int i = 0; i < repeat; i++)
            {
                timer.Start();
                run();
                times[i] = timer.Stop();
            }
        }
        else
        {
            for (int i = 0; i < repeat; i++)
            {
                long start = Stopwatch.GetTimestamp();
                run();
                ops.Device.Synchronize();
                times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
        }
        Array.Sort(times);
        return times[repeat / 2];
    }

    /// <summary>Peak memory bandwidth (GB/s) and fp32 throughput (TFLOP/s) from the device's attributes, when it has them.</summary>
    private static (double GBs, double Tflops, string Label) Peaks(Device dev)
    {
        if (dev is not CudaDevice cuda)
            return (0, 0, "CPU device: wall-clock times, no peak known");
        if (cuda.Backend == CudaBackend.Emulator)
            return (0, 0, "EMULATED: the CUDA kernels run on the CPU emulator; these times measure the emulation, not a GPU");
        var (gbs, tflops) = (cuda.PeakMemoryBandwidthGBs, cuda.PeakFp32Tflops);
        return (gbs, tflops, gbs > 0 && tflops > 0
            ? string.Create(CultureInfo.InvariantCulture, $"CUDA events; peaks from the attributes: {gbs:F0} GB/s, {tflops:F1} TFLOP/s fp32")
            : "CUDA events; the device's attributes give no peak");
    }

    private static string Describe(Device dev) => dev is CudaDevice c ? c.ToString() : dev.Name;
}
