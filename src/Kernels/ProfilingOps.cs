using System.Diagnostics;
using System.Reflection;
using BlockDance.Runtime;

namespace BlockDance.Kernels;

/// <summary>
/// Wraps a backend and accumulates wall time and calls per op (synchronizing the device after every op, so that the
/// time is the op's own) while <see cref="Enabled"/>. For profiling runs only (<c>blockdance bench forward --profile</c>);
/// it changes nothing in the results. Every <see cref="IOps"/> method is forwarded by one generic interceptor
/// (<see cref="DispatchProxy"/>), so a new op needs nothing here; the interception allocates, which a profiling run may.
/// Make one with <see cref="Wrap"/>: the object it returns is both the <see cref="IOps"/> and this profiler.
/// </summary>
internal class ProfilingOps : DispatchProxy
{
    private readonly Dictionary<string, (double Ms, long Calls)> _totals = [];
    private readonly List<(int M, int N, int K)> _gemms = [];
    private readonly Dictionary<(int M, int N, int K, Activation Act), (double Ms, long Calls)> _products = [];
    private IOps? _inner;

    /// <summary>The profiling wrapper of <paramref name="inner"/>: an <see cref="IOps"/> that is also a <see cref="ProfilingOps"/>.</summary>
    public static IOps Wrap(IOps inner)
    {
        ArgumentNullException.ThrowIfNull(inner);
        var ops = Create<IOps, ProfilingOps>();
        ((ProfilingOps)(object)ops)._inner = inner;
        return ops;
    }

    /// <summary>The wrapped backend.</summary>
    public IOps Inner => _inner ?? throw new InvalidOperationException("a ProfilingOps is made by ProfilingOps.Wrap");

    /// <summary>Per op name (Linear ops also by activation): total milliseconds and calls, largest first.</summary>
    public IReadOnlyList<(string Op, double Milliseconds, long Calls)> Totals =>
        _totals.Select(p => (p.Key, p.Value.Ms, p.Value.Calls)).OrderByDescending(p => p.Ms).ToList();

    /// <summary>
    /// Per Linear shape (X [M, K] · Wᵀ [K, N]) and activation: total milliseconds and calls, largest first. The roofline
    /// of bench/cpu_bench.py takes each product's own work from it (a GEMV of M = 2 is measured against the memory
    /// bandwidth, not the FMA peak).
    /// </summary>
    public IReadOnlyList<(int M, int N, int K, Activation Act, double Milliseconds, long Calls)> ProductTotals =>
        _products.Select(p => (p.Key.M, p.Key.N, p.Key.K, p.Key.Act, p.Value.Ms, p.Value.Calls)).OrderByDescending(p => p.Ms).ToList();

    /// <summary>The matrix products of the recorded ops as (M, N, K) row-major shapes: every Linear, and per attention call its Q·Kᵀ and P·V per batch item and head.</summary>
    public IReadOnlyList<(int M, int N, int K)> GemmShapes => _gemms;

    /// <summary>Forgets the recorded totals and shapes.</summary>
    public void Reset()
    {
        _totals.Clear();
        _gemms.Clear();
        _products.Clear();
    }

    /// <summary>When false, ops pass straight through (no timing, no synchronization).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Forwards an <see cref="IOps"/> call to <see cref="Inner"/>; ops (not properties or Dispose) are timed while enabled.</summary>
    protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
    {
        ArgumentNullException.ThrowIfNull(targetMethod);
        var inner = Inner;
        bool isOp = Enabled && !targetMethod.IsSpecialName && targetMethod.Name != nameof(IDisposable.Dispose);
        if (!isOp)
            return targetMethod.Invoke(inner, BindingFlags.DoNotWrapExceptions, null, args, null);
        string name = targetMethod.Name;
        (int M, int N, int K, Activation Act)? product = null;
        if (name == nameof(IOps.Linear) && args is [Tensor x, Tensor w, _, _, Activation act])
        {
            product = ((int)(x.Count / w.Dim(1)), w.Dim(0), w.Dim(1), act);
            _gemms.Add((product.Value.M, product.Value.N, product.Value.K));
            if (act != Activation.None)
                name = $"Linear+{act}";
        }
        else if (name == nameof(IOps.Attention) && args is [Tensor qkv, int heads, _])
        {
            int t = qkv.Dim(1), dh = qkv.Dim(2) / 3 / heads;
            for (int i = 0; i < qkv.Dim(0) * heads; i++)
            {
                _gemms.Add((t, t, dh));
                _gemms.Add((t, dh, t));
            }
        }
        long start = Stopwatch.GetTimestamp();
        object? result = targetMethod.Invoke(inner, BindingFlags.DoNotWrapExceptions, null, args, null);
        inner.Device.Synchronize();
        double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        var (total, calls) = _totals.GetValueOrDefault(name);
        _totals[name] = (total + ms, calls + 1);
        if (product is { } key)
        {
            (total, calls) = _products.GetValueOrDefault(key);
            _products[key] = (total + ms, calls + 1);
        }
        return result;
    }
}
