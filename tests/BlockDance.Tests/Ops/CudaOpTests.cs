using BlockDance.Kernels.Cpu;
using BlockDance.Kernels.Cuda;
using BlockDance.Runtime;
using BlockDance.Runtime.Cuda;
using Xunit;

namespace BlockDance.Tests.Ops;

/// <summary>
/// One emulated CUDA device per test class (opened on first use, so that a missing emulator fails each test with the
/// message below instead of a fixture error), with the ops of each activation type on it.
/// </summary>
public sealed class CudaEmuFixture : IDisposable
{
    private readonly Dictionary<DType, CudaOps> _ops = [];
    private CudaDevice? _device;
    private string? _originalSchedule;

    public CudaDevice Device => _device ??= OpenEmulator();

    /// <summary>The ops of <paramref name="type"/>, with the emulator's thread schedule set to <paramref name="schedule"/>.</summary>
    public CudaOps Ops(DType type, string schedule)
    {
        var emulator = Device.Emulator!;
        _originalSchedule ??= emulator.GetSchedule();
        emulator.SetSchedule(schedule);
        if (!_ops.TryGetValue(type, out var ops))
            _ops[type] = ops = new CudaOps(Device, type);
        return ops;
    }

    /// <summary>
    /// Opens the emulator, or fails (never skips: CI builds the emulator, and a skipped emulator test would hide a broken
    /// build) with a message that says how to build it.
    /// </summary>
    public static CudaDevice OpenEmulator()
    {
        try
        {
            return CudaDevice.Open(CudaBackend.Emulator);
        }
        catch (CudaUnavailableException e)
        {
            throw new InvalidOperationException(
                $"the cuda-emu tests need the CUDA emulator's libraries (native/build/lib): {e.Message}. " +
                "These tests fail rather than skip so that a missing emulator cannot hide.", e);
        }
    }

    public void Dispose()
    {
        foreach (var ops in _ops.Values)
            ops.Dispose();
        _ops.Clear();
        if (_device is not null)
        {
            if (_originalSchedule is not null)
                _device.Emulator!.SetSchedule(_originalSchedule);
            _device.Dispose();
            _device = null;
        }
    }
}

/// <summary>
/// Every op of <see cref="OpTests"/> on the CUDA backend running on the emulator, in one storage type and under one of
/// the emulator's thread schedules (forward, reverse, random:SEED), which expose missing barriers and order-dependent
/// results (so every concrete class is in the <see cref="ProcessWideSettings"/> collection). Tolerances (max |a − b| / max |b| against the naive double-precision reference on inputs already rounded to
/// the storage type): F32 2e-5, F16 4e-3 (≈ 8 units of f16's 2⁻¹¹ rounding), BF16 3e-2 (≈ 8 units of bf16's 2⁻⁸).
/// </summary>
public abstract class CudaEmuOpTests(CudaEmuFixture fixture, DType type, string schedule)
    : OpTests(fixture.Ops(type, schedule)), IClassFixture<CudaEmuFixture>
{
    /// <summary>The CUDA draw equals the CPU device's draw for the same (seed, offset); in the storage type it is that
    /// draw rounded once.</summary>
    [Theory]
    [InlineData(7UL, 12_345UL)]
    [InlineData(0xDEAD_BEEF_CAFEUL, 0UL)]
    [InlineData(42UL, (1UL << 33) + 1)]   // a counter above 2³²: the high counter word matters
    public void RandomNormal_draws_what_the_cpu_device_draws(ulong seed, ulong offset)
    {
        const int n = 100_003;
        using var cpuOps = new CpuOps();
        using var cpu = CpuDevice.Instance.Allocate(DType.F32, n);
        cpuOps.RandomNormal(cpu, seed, offset);
        var expected = cpu.ToArray<float>();

        using var y = Dev.Allocate(DType.F32, n);
        Ops.RandomNormal(y, seed, offset);
        var actual = y.ToArray<float>();
        double maxAbs = 0;
        for (int i = 0; i < n; i++)
            maxAbs = Math.Max(maxAbs, Math.Abs((double)actual[i] - expected[i]));
        Assert.True(maxAbs <= 2e-6, $"max |cuda − cpu| = {maxAbs:E2} over {n} samples (seed {seed}, offset {offset})");

        if (Ops.ActivationType != DType.F32)
        {
            using var stored = Dev.Allocate(Ops.ActivationType, n);
            Ops.RandomNormal(stored, seed, offset);
            Assert.Equal(Stored(expected), stored.ToFloatArray());
        }
    }
}

[Collection(nameof(ProcessWideSettings))]
public sealed class CudaEmuF32ForwardOpTests(CudaEmuFixture f) : CudaEmuOpTests(f, DType.F32, "forward");
[Collection(nameof(ProcessWideSettings))]
public sealed class CudaEmuF32ReverseOpTests(CudaEmuFixture f) : CudaEmuOpTests(f, DType.F32, "reverse");
[Collection(nameof(ProcessWideSettings))]
public sealed class CudaEmuF32RandomOpTests(CudaEmuFixture f) : CudaEmuOpTests(f, DType.F32, "random:20250101");
[Collection(nameof(ProcessWideSettings))]
public sealed class CudaEmuF16ForwardOpTests(CudaEmuFixture f) : CudaEmuOpTests(f, DType.F16, "forward");
[Collection(nameof(ProcessWideSettings))]
public sealed class CudaEmuF16ReverseOpTests(CudaEmuFixture f) : CudaEmuOpTests(f, DType.F16, "reverse");
[Collection(nameof(ProcessWideSettings))]
public sealed class CudaEmuF16RandomOpTests(CudaEmuFixture f) : CudaEmuOpTests(f, DType.F16, "random:7");
[Collection(nameof(ProcessWideSettings))]
public sealed class CudaEmuBF16ForwardOpTests(CudaEmuFixture f) : CudaEmuOpTests(f, DType.BF16, "forward");
[Collection(nameof(ProcessWideSettings))]
public sealed class CudaEmuBF16ReverseOpTests(CudaEmuFixture f) : CudaEmuOpTests(f, DType.BF16, "reverse");
[Collection(nameof(ProcessWideSettings))]
public sealed class CudaEmuBF16RandomOpTests(CudaEmuFixture f) : CudaEmuOpTests(f, DType.BF16, "random:1");

/// <summary>
/// The same op tests on a real GPU (<c>--device cuda</c>). Without one they are reported SKIPPED (Assert.Skip in the
/// constructor), never passed. One device per process, never disposed (the process exit releases it).
/// </summary>
public abstract class CudaGpuOpTests(DType type) : OpTests(GpuOps(type))
{
    private static readonly Lock s_lock = new();
    private static readonly Dictionary<DType, CudaOps> s_ops = [];
    private static CudaDevice? s_device;

    /// <summary>A GPU's logf/sinf/cosf are accurate to 1–2 ulp but not glibc's bit for bit.</summary>
    protected override float RandomNormalTolerance => 2e-6f;

    internal static CudaOps GpuOps(DType type)
    {
        if (!CudaDevice.IsGpuAvailable(out string why))
            Assert.Skip($"no CUDA GPU on this machine ({why}); the same tests run on the emulator (CudaEmu*OpTests)");
        lock (s_lock)
        {
            s_device ??= CudaDevice.Open(CudaBackend.Nvidia);
            if (!s_ops.TryGetValue(type, out var ops))
                s_ops[type] = ops = new CudaOps(s_device, type);
            return ops;
        }
    }
}

public sealed class CudaGpuF32OpTests() : CudaGpuOpTests(DType.F32);
public sealed class CudaGpuF16OpTests() : CudaGpuOpTests(DType.F16);
public sealed class CudaGpuBF16OpTests() : CudaGpuOpTests(DType.BF16);
