using BlockDance.Kernels;
using BlockDance.Kernels.Cpu;
using BlockDance.Runtime;
using Xunit;

namespace BlockDance.Tests.Ops;

/// <summary><see cref="ProfilingOps"/>: every IOps method forwarded (results unchanged), timed per op name and per
/// product shape while enabled, GEMM shapes recorded, errors passed through as thrown.</summary>
public sealed class ProfilingOpsTests
{
    [Fact]
    public void Profiled_ops_compute_the_same_and_record_each_op_and_its_gemm_shapes()
    {
        using var cpu = new CpuOps();
        var ops = ProfilingOps.Wrap(cpu);
        var profiler = Assert.IsAssignableFrom<ProfilingOps>(ops);
        Assert.Same(cpu, profiler.Inner);
        Assert.Same(cpu.Device, ops.Device);
        Assert.Equal(DType.F32, ops.ActivationType);
        var dev = ops.Device;
        using var x = dev.FromFloats(Reference.Random(3 * 8, 1), DType.F32, 3, 8);
        using var w = dev.FromFloats(Reference.Random(5 * 8, 2), DType.F32, 5, 8);
        using var y = dev.Allocate(DType.F32, 3, 5);
        using var expected = dev.Allocate(DType.F32, 3, 5);
        ops.Linear(x, w, null, y, Activation.GeluTanh);
        cpu.Linear(x, w, null, expected, Activation.GeluTanh);
        Assert.Equal(expected.ToArray<float>(), y.ToArray<float>());
        using var qkv = dev.FromFloats(Reference.Random(2 * 4 * 24, 3), DType.F32, 2, 4, 24);
        using var att = dev.Allocate(DType.F32, 2, 4, 8);
        ops.Attention(qkv, 2, att);
        ops.Silu(y, y);
        ops.Silu(y, y);

        var totals = profiler.Totals.ToDictionary(t => t.Op);
        Assert.Equal(["Attention", "Linear+GeluTanh", "Silu"], totals.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(2, totals["Silu"].Calls);
        Assert.Equal(1, totals["Attention"].Calls);
        Assert.All(totals.Values, t => Assert.True(t.Milliseconds >= 0));
        // Linear: (M, N, K) = (3, 5, 8); attention: per item and head Q·Kᵀ (T, T, Dh) and P·V (T, Dh, T).
        Assert.Equal([(3, 5, 8), (4, 4, 4), (4, 4, 4), (4, 4, 4), (4, 4, 4), (4, 4, 4), (4, 4, 4), (4, 4, 4), (4, 4, 4)], profiler.GemmShapes);
        ops.Linear(x, w, null, y, Activation.GeluTanh);
        ops.Linear(x, w, null, y);
        var products = profiler.ProductTotals.ToDictionary(p => (p.M, p.N, p.K, p.Act), p => p.Calls);
        Assert.Equal(new Dictionary<(int, int, int, Activation), long> { [(3, 5, 8, Activation.GeluTanh)] = 2, [(3, 5, 8, Activation.None)] = 1 }, products);

        profiler.Reset();
        profiler.Enabled = false;
        ops.Silu(y, y);
        Assert.Empty(profiler.Totals);
        Assert.Empty(profiler.GemmShapes);
        Assert.Empty(profiler.ProductTotals);
    }

    [Fact]
    public void An_op_error_reaches_the_caller_as_thrown()
    {
        using var cpu = new CpuOps();
        var ops = ProfilingOps.Wrap(cpu);
        using var a = cpu.Device.Allocate(DType.F32, 4);
        using var b = cpu.Device.Allocate(DType.F32, 5);
        var e = Assert.Throws<ArgumentException>(() => ops.Add(a, a, b));
        Assert.Contains("Add", e.Message, StringComparison.Ordinal);
    }
}
