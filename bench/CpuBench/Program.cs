using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using BlockDance.Dit;
using BlockDance.Runtime;
using BlockDance.Runtime.Safetensors;
using Microsoft.ML.OnnxRuntime;

// ONNX Runtime (Microsoft.ML.OnnxRuntime, CPU provider) on a DiT exported by bench/ort_export.py: the opponent of
// `blockdance bench forward` in bench/cpu_bench.py forward (issue 16).
//
//   CpuBench time  --onnx M.onnx [--threads 2] [--repeat 5] [--warmup 10] [--profile]
//       median latency of session.Run on seeded random inputs (batch and size from the model); last line median_ms=...
//       --profile: afterwards, ORT's own per-node profile of --repeat more runs, summed by op type.
//   CpuBench check --onnx M.onnx --weights W.safetensors [--threads 2]
//       runs ORT and the BlockDance CPU device on the inputs bench/ort_export.py saved (M.onnx.io.safetensors) and
//       prints the max abs / max relative difference of each against PyTorch's output and of the two against each other.
//   CpuBench gemm [--rounds 5] [--core-peak GFLOPS] [--out bench/results/gemm-cpu.md] [--note TEXT]
//       GFLOP/s of the CPU device's GEMM and of OpenBLAS sgemm on DiT-S/2's and B/2's products, 1 and 2 threads
//       (bench/CpuBench/Gemm.cs); --out puts the run at the top of FILE, earlier runs kept below; --core-peak: one
//       core's FMA peak measured on a quiet machine, for the % columns (default: measured at the start of the run).
//   CpuBench cold [--threads 2]
//       a product with its packed weight in cache vs from memory (ColdGemm.cs).
//   CpuBench regions [--threads 2] [--calls 2000]
//       what one parallel region costs beyond its work, back to back and after the caller worked alone (Regions.cs).
//   CpuBench attention [--threads 2] [--rounds 5]
//       the attention op alone on DiT-S/2's, B/2's and XL/2's shapes, its qkv in cache (AttentionBench.cs).
//   CpuBench peak [--threads 2] [--repeat 5]
//       the roofline of this machine: peak FMA GFLOP/s of the threads and memory read bandwidth (bench/CpuBench/Peak.cs).
// Environment: CPUBENCH_ORT_OPT=none|basic|extended|all sets the graph optimisation level (default all).

var ci = CultureInfo.InvariantCulture;
var opts = ParseArgs(args);
string mode = args.Length > 0 ? args[0] : throw new ArgumentException("usage: CpuBench time|check --onnx FILE ... | peak | gemm");
if (mode == "peak")
{
    int n = Int(opts, "--threads", 2), rep = Int(opts, "--repeat", 5);
    var (gflops, isa) = BlockDance.Bench.Peak.Fma(n, rep);
    double bw = BlockDance.Bench.Peak.ReadBandwidth(n, rep);
    Console.WriteLine(string.Create(ci, $"peak_fma_gflops={gflops:F1}  ({n} threads, {isa}, best of {rep})"));
    Console.WriteLine(string.Create(ci, $"read_bandwidth_gbs={bw:F1}  ({n} threads, 1 GiB buffer, best of {rep})"));
    return 0;
}
if (mode == "cold")
{
    BlockDance.Bench.ColdGemm.Run(Int(opts, "--threads", 2));
    return 0;
}
if (mode == "attention")
{
    BlockDance.Bench.AttentionBench.Run(Int(opts, "--threads", 2), Int(opts, "--rounds", 5));
    return 0;
}
if (mode == "regions")
{
    BlockDance.Bench.Regions.Run(Int(opts, "--threads", 2), Int(opts, "--calls", 2000));
    return 0;
}
if (mode == "gemm")
{
    int rounds = Int(opts, "--rounds", 5);
    double? corePeak = opts.TryGetValue("--core-peak", out var cp) ? double.Parse(cp, ci) : null;
    string table = BlockDance.Bench.Gemm.Run(rounds, [1, 2], corePeak);
    if (opts.TryGetValue("--out", out var outPath))
    {
        string earlier = File.Exists(outPath) ? File.ReadAllText(outPath) : "";
        int cut = earlier.IndexOf("\n## ", StringComparison.Ordinal);
        string header = "# GEMM micro-benchmark: the CPU device's packed GEMM vs OpenBLAS sgemm\n\nWritten by `CpuBench gemm --out FILE` "
            + "(bench/CpuBench/Gemm.cs); the newest run first, earlier runs below.\n";
        string note = opts.TryGetValue("--note", out var nt) ? nt + "\n\n" : "";
        string run = string.Create(ci, $"\n## {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC\n\n{BlockDance.Bench.Gemm.Machine()}\n\n{note}{table}");
        File.WriteAllText(outPath, header + run + (cut >= 0 ? earlier[cut..] : ""));
    }
    return 0;
}
string onnx = opts.TryGetValue("--onnx", out var o) ? o : throw new ArgumentException("--onnx FILE is required");
int threads = Int(opts, "--threads", 2);
using var session = new InferenceSession(onnx, Options(threads, profile: false));
var inputs = session.InputMetadata;
int[] xShape = inputs["x"].Dimensions;
int batch = xShape[0];

if (mode == "time")
{
    int repeat = Int(opts, "--repeat", 5), warmup = Int(opts, "--warmup", 10);
    var rng = new Random(0);
    float[] x = Enumerable.Range(0, xShape.Aggregate(1, (a, b) => a * b)).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
    float[] t = Enumerable.Range(0, batch).Select(i => 500f + i).ToArray();
    long[] y = Enumerable.Range(0, batch).Select(i => (long)(i % 1001)).ToArray();
    double[] times = Time(session, x, xShape, t, y, warmup, repeat);
    Array.Sort(times);
    double median = repeat % 2 == 1 ? times[repeat / 2] : (times[repeat / 2 - 1] + times[repeat / 2]) / 2;
    Console.WriteLine(string.Create(ci, $"onnxruntime {OrtEnv.Instance().GetVersionString()}, {onnx}, batch {batch}, threads {threads}"));
    Console.WriteLine(string.Create(ci, $"forward: min {times[0]:F2} ms, median {median:F2} ms, max {times[^1]:F2} ms over {repeat} runs ({string.Join(", ", times.Select(v => v.ToString("F1", ci)))})"));
    if (opts.ContainsKey("--profile"))
        Profile(onnx, threads, x, xShape, t, y, repeat);
    Console.WriteLine(string.Create(ci, $"median_ms={median:F3}"));
    return 0;
}
if (mode != "check")
    throw new ArgumentException($"unknown mode '{mode}' (time or check)");

string weights = opts.TryGetValue("--weights", out var w) ? w : throw new ArgumentException("--weights FILE is required");
using var io = SafetensorsFile.Open(onnx + ".io.safetensors");
float[] xs = io.ReadFloat32("x"), ts = io.ReadFloat32("t"), torchOut = io.ReadFloat32("out");
long[] ys = io.ReadInt64("y");
int[] outShape = io["out"].Shape.ToArray();

float[] ortOut = new float[torchOut.Length];
using (var xv = OrtValue.CreateTensorValueFromMemory(xs, xShape.Select(d => (long)d).ToArray()))
using (var tv = OrtValue.CreateTensorValueFromMemory(ts, [batch]))
using (var yv = OrtValue.CreateTensorValueFromMemory(ys, [batch]))
using (var ov = OrtValue.CreateTensorValueFromMemory(ortOut, outShape.Select(d => (long)d).ToArray()))
using (var ro = new RunOptions())
    session.Run(ro, ["x", "t", "y"], [xv, tv, yv], ["out"], [ov]);

float[] ours;
using (var checkpoint = DitCheckpoint.Open(weights))
using (var ops = new BlockDance.Kernels.Cpu.CpuOps(threads))
using (var model = DitModel.Load(checkpoint, ops))
{
    var dev = ops.Device;
    using var xt = dev.FromFloats(xs, DType.F32, xShape);
    using var tt = dev.FromHost<float>(ts, DType.F32, batch);
    using var yt = dev.FromHost<int>(ys.Select(v => (int)v).ToArray(), DType.I32, batch);
    using var output = dev.Allocate(DType.F32, outShape);
    using var a = model.CreateActivations(batch, xShape[2], xShape[3]);
    model.Forward(xt, tt, yt, output, a);
    ours = output.AsSpan<float>().ToArray();
}
Console.WriteLine(string.Create(ci, $"onnxruntime {OrtEnv.Instance().GetVersionString()}; {onnx}; {torchOut.Length} outputs; PyTorch {io.Metadata.GetValueOrDefault("torch")}"));
Report("ORT vs PyTorch", ortOut, torchOut);
Report("BlockDance CPU vs PyTorch", ours, torchOut);
Report("BlockDance CPU vs ORT", ours, ortOut);
return 0;

static SessionOptions Options(int threads, bool profile)
{
    var so = new SessionOptions
    {
        IntraOpNumThreads = threads,
        InterOpNumThreads = 1,
        ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
        GraphOptimizationLevel = Environment.GetEnvironmentVariable("CPUBENCH_ORT_OPT") switch
        {
            "none" => GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic" => GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended" => GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            _ => GraphOptimizationLevel.ORT_ENABLE_ALL,
        },
    };
    if (profile)
    {
        so.EnableProfiling = true;
        so.ProfileOutputPathPrefix = Path.Combine(Path.GetTempPath(), $"cpubench-{Environment.ProcessId}");
    }
    return so;
}

static double[] Time(InferenceSession session, float[] x, int[] xShape, float[] t, long[] y, int warmup, int repeat)
{
    int batch = xShape[0];
    var outMeta = session.OutputMetadata["out"].Dimensions;
    float[] output = new float[outMeta.Aggregate(1, (a, b) => a * b)];
    using var xv = OrtValue.CreateTensorValueFromMemory(x, xShape.Select(d => (long)d).ToArray());
    using var tv = OrtValue.CreateTensorValueFromMemory(t, [batch]);
    using var yv = OrtValue.CreateTensorValueFromMemory(y, [batch]);
    using var ov = OrtValue.CreateTensorValueFromMemory(output, outMeta.Select(d => (long)d).ToArray());
    using var ro = new RunOptions();
    string[] inNames = ["x", "t", "y"], outNames = ["out"];
    OrtValue[] inValues = [xv, tv, yv], outValues = [ov];
    for (int i = 0; i < warmup; i++)
        session.Run(ro, inNames, inValues, outNames, outValues);
    var times = new double[repeat];
    for (int i = 0; i < repeat; i++)
    {
        long start = Stopwatch.GetTimestamp();
        session.Run(ro, inNames, inValues, outNames, outValues);
        times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }
    return times;
}

// ORT's profiler writes one JSON event per node run ("cat": "Node", "dur" in µs, args.op_name): summed by op type.
static void Profile(string onnx, int threads, float[] x, int[] xShape, float[] t, long[] y, int repeat)
{
    var ci = CultureInfo.InvariantCulture;
    string file;
    using (var s = new InferenceSession(onnx, Options(threads, profile: true)))
    {
        Time(s, x, xShape, t, y, 2, repeat);
        file = s.EndProfiling();
    }
    var byOp = new Dictionary<string, (double Us, int Calls)>();
    using (var doc = JsonDocument.Parse(File.ReadAllText(file)))
        foreach (var e in doc.RootElement.EnumerateArray())
        {
            if (e.GetProperty("cat").GetString() != "Node" || !e.GetProperty("name").GetString()!.EndsWith("_kernel_time", StringComparison.Ordinal))
                continue;
            string op = e.GetProperty("args").GetProperty("op_name").GetString()!;
            var (us, calls) = byOp.GetValueOrDefault(op);
            byOp[op] = (us + e.GetProperty("dur").GetDouble(), calls + 1);
        }
    File.Delete(file);
    int runs = repeat + 2;
    double total = byOp.Values.Sum(v => v.Us);
    Console.WriteLine($"{"ort op",-22} {"ms/forward",11} {"share",7} {"calls",7}");
    foreach (var (op, (us, calls)) in byOp.OrderByDescending(kv => kv.Value.Us))
        Console.WriteLine(string.Create(ci, $"{op,-22} {us / 1000 / runs,11:F2} {us / total,7:P1} {calls / runs,7}"));
}

static void Report(string what, float[] a, float[] b)
{
    double maxAbs = 0, maxRef = 0;
    for (int i = 0; i < a.Length; i++)
    {
        maxAbs = Math.Max(maxAbs, Math.Abs((double)a[i] - b[i]));
        maxRef = Math.Max(maxRef, Math.Abs((double)b[i]));
    }
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{what}: max abs diff {maxAbs:E3}, relative to max |ref| {maxAbs / maxRef:E3}"));
}

static Dictionary<string, string> ParseArgs(string[] args)
{
    var d = new Dictionary<string, string>();
    for (int i = 1; i < args.Length; i++)
    {
        if (!args[i].StartsWith("--", StringComparison.Ordinal))
            throw new ArgumentException($"unexpected argument '{args[i]}'");
        d[args[i]] = i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal) ? args[++i] : "";
    }
    return d;
}

static int Int(Dictionary<string, string> d, string key, int fallback) =>
    d.TryGetValue(key, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
