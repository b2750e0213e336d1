using System.Diagnostics;
using BlockDance.Runtime;

namespace BlockDance.Kernels;

/// <summary>
/// Wraps a backend and accumulates wall time and calls per op (synchronizing the device after every op, so that the
/// time is the op's own) while <see cref="Enabled"/>. For profiling runs only (<c>blockdance bench forward --profile</c>); it changes nothing in
/// the results.
/// </summary>
public sealed class ProfilingOps(IOps inner) : IOps
{
    private readonly Dictionary<string, (double Ms, long Calls)> _totals = [];
    private readonly List<(int M, int N, int K)> _gemms = [];

    public IOps Inner => inner;
    public Device Device => inner.Device;
    public DType ActivationType => inner.ActivationType;

    /// <summary>Per op name (Linear ops also by activation): total milliseconds and calls, largest first.</summary>
    public IReadOnlyList<(string Op, double Milliseconds, long Calls)> Totals =>
        _totals.Select(p => (p.Key, p.Value.Ms, p.Value.Calls)).OrderByDescending(p => p.Ms).ToList();

    /// <summary>The matrix products of the recorded ops as (M, N, K) row-major shapes: every Linear, and per attention call its Q·Kᵀ and P·V per batch item and head.</summary>
    public IReadOnlyList<(int M, int N, int K)> GemmShapes => _gemms;

    public void Reset()
    {
        _totals.Clear();
        _gemms.Clear();
    }

    /// <summary>When false, ops pass straight through (no timing, no synchronization).</summary>
    public bool Enabled { get; set; } = true;

    private void Time(string name, Action action)
    {
        if (!Enabled)
        {
            action();
            return;
        }
        long start = Stopwatch.GetTimestamp();
        action();
        inner.Device.Synchronize();
        double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        var (total, calls) = _totals.GetValueOrDefault(name);
        _totals[name] = (total + ms, calls + 1);
    }

    public void Linear(Tensor x, Tensor w, Tensor? b, Tensor y, Activation act = Activation.None)
    {
        if (Enabled)
            _gemms.Add(((int)(x.Count / w.Dim(1)), w.Dim(0), w.Dim(1)));
        Time(act == Activation.None ? "Linear" : $"Linear+{act}", () => inner.Linear(x, w, b, y, act));
    }
    public void Silu(Tensor x, Tensor y) => Time(nameof(Silu), () => inner.Silu(x, y));
    public void Add(Tensor a, Tensor b, Tensor y) => Time(nameof(Add), () => inner.Add(a, b, y));
    public void LayerNormModulate(Tensor x, Tensor mod, int shiftChunk, int scaleChunk, float eps, Tensor y) =>
        Time(nameof(LayerNormModulate), () => inner.LayerNormModulate(x, mod, shiftChunk, scaleChunk, eps, y));
    public void GatedResidualAdd(Tensor x, Tensor h, Tensor mod, int gateChunk) =>
        Time(nameof(GatedResidualAdd), () => inner.GatedResidualAdd(x, h, mod, gateChunk));
    public void Attention(Tensor qkv, int heads, Tensor y)
    {
        int t = qkv.Dim(1), dh = qkv.Dim(2) / 3 / heads;
        for (int i = 0; Enabled && i < qkv.Dim(0) * heads; i++)
        {
            _gemms.Add((t, t, dh));
            _gemms.Add((t, dh, t));
        }
        Time(nameof(Attention), () => inner.Attention(qkv, heads, y));
    }
    public void Patchify(Tensor image, int patch, Tensor cols) => Time(nameof(Patchify), () => inner.Patchify(image, patch, cols));
    public void AddPositionEmbedding(Tensor x, Tensor pos) => Time(nameof(AddPositionEmbedding), () => inner.AddPositionEmbedding(x, pos));
    public void Unpatchify(Tensor x, int patch, Tensor image) => Time(nameof(Unpatchify), () => inner.Unpatchify(x, patch, image));
    public void SwapFrameTokenAxes(Tensor x, Tensor y) => Time(nameof(SwapFrameTokenAxes), () => inner.SwapFrameTokenAxes(x, y));
    public void TimestepEmbedding(Tensor t, int frequencyShift, Tensor y) => Time(nameof(TimestepEmbedding), () => inner.TimestepEmbedding(t, frequencyShift, y));
    public void EmbeddingLookup(Tensor table, Tensor ids, Tensor y) => Time(nameof(EmbeddingLookup), () => inner.EmbeddingLookup(table, ids, y));
    public void GuidanceCombine(Tensor output, int guidedChannels, float scale, Tensor y) =>
        Time(nameof(GuidanceCombine), () => inner.GuidanceCombine(output, guidedChannels, scale, y));
    public void DdimStep(Tensor x, Tensor modelOutput, in DdimCoefficients c, Tensor? noise)
    {
        var copy = c;
        Time(nameof(DdimStep), () => inner.DdimStep(x, modelOutput, copy, noise));
    }
    public void AncestralStep(Tensor x, Tensor modelOutput, in AncestralCoefficients c, Tensor? noise)
    {
        var copy = c;
        Time(nameof(AncestralStep), () => inner.AncestralStep(x, modelOutput, copy, noise));
    }
    public void RandomNormal(Tensor y, ulong seed, ulong offset) => Time(nameof(RandomNormal), () => inner.RandomNormal(y, seed, offset));

    public void Dispose() => inner.Dispose();
}
