using System.Text.RegularExpressions;
using BlockDance.Kernels;
using BlockDance.Kernels.Cuda;
using BlockDance.Kernels.Harness;
using BlockDance.Runtime;
using BlockDance.Runtime.Cuda;
using Xunit;

namespace BlockDance.Tests.Ops;

/// <summary>
/// The CUDA backend's plumbing on the emulator: launcher argument layouts against the kernels' parameters, the NVRTC
/// module cache (key, corrupt entries), the stub modules without NVRTC, allocation-free launches and the backend
/// names. The numerics are in <see cref="CudaEmuOpTests"/>.
/// </summary>
public sealed partial class CudaKernelTests : IDisposable
{
    private readonly CudaDevice _device = CudaEmuFixture.OpenEmulator();
    private readonly Fixtures.TempDir _temp = new();

    public void Dispose()
    {
        _device.Dispose();
        _temp.Dispose();
    }

    /// <summary>
    /// Every op of the harness (<see cref="OpCases"/>) at its smallest test shape, set up once on one backend, plus
    /// RandomNormal in the activation type: every kernel of the storage type, and random_normal_f32. A new op's case
    /// joins by itself.
    /// </summary>
    private sealed class EveryOp : IDisposable
    {
        private readonly List<OpContext> _contexts = [];
        private readonly List<Action> _runs = [];

        public EveryOp(IOps ops)
        {
            foreach (var op in OpCases.All)
            {
                var ctx = new OpContext(ops);
                _contexts.Add(ctx);
                _runs.Add(op.Setup(ctx, op.TestShapes[0]).Run);
            }
            var noise = new OpContext(ops);
            _contexts.Add(noise);
            var stored = noise.Output(2, 4, 4, 4);
            _runs.Add(() => ops.RandomNormal(stored, 1, 2));
        }

        /// <summary>Calls every op once.</summary>
        public void Run()
        {
            foreach (var run in _runs)
                run();
        }

        public void Dispose()
        {
            foreach (var ctx in _contexts)
                ctx.Dispose();
        }
    }

    [Fact]
    public void Every_kernel_is_launched_with_arguments_of_exactly_its_parameter_types()
    {
        var emulator = _device.Emulator!;
        var checkedSignatures = new Dictionary<string, string>();
        foreach (var type in KernelCatalog.Types)
        {
            using var ops = new CudaOps(_device, type);
            using (var operands = new EveryOp(ops))
                operands.Run();
            _device.Synchronize();
            foreach (var (name, signature) in ops.Loader.CheckedSignatures)
                checkedSignatures[name] = signature;
        }
        var all = Enum.GetValues<KernelModule>().SelectMany(KernelCatalog.EntryPoints).ToList();
        // Every kernel the emulator built from src/Kernels/cuda (51 today), not only those the catalog lists.
        Assert.Equal(emulator.KernelList().Where(k => k.Source.StartsWith("src/Kernels/cuda/", StringComparison.Ordinal)).Select(k => k.Name).Order(StringComparer.Ordinal),
            all.Order(StringComparer.Ordinal));
        Assert.True(all.Count >= 51, $"{all.Count} kernels");
        Assert.Empty(all.Except(checkedSignatures.Keys));
        foreach (string name in all)
            Assert.True(emulator.KernelSignature(name) == checkedSignatures[name],
                $"{name}: the launcher passes ({checkedSignatures[name]}), the kernel takes ({emulator.KernelSignature(name)})");
    }

    // Argument structs that disagree with silu's parameters (const T* x, T* y, int total): a missing field, a float
    // where an int belongs, an extra field.
    [Kernel(KernelModule.Elementwise, "silu")] private struct SiluMissingTotal : IKernelArgs { public nint X, Y; }

    [Kernel(KernelModule.Elementwise, "silu")] private struct SiluFloatTotal : IKernelArgs { public nint X, Y; public float Total; }

    // 32 bytes: more than silu's 20 (24 as a struct), so the driver's size check sees it too.
    [Kernel(KernelModule.Elementwise, "silu")] private struct SiluExtraField : IKernelArgs { public nint X, Y; public int Total; public long Extra; }

    [Fact]
    public void A_launch_with_an_argument_struct_that_does_not_match_the_kernel_fails_naming_the_kernel()
    {
        using var loader = new KernelLoader(_device, compiler: null);
        using var x = _device.FromFloats([1f, -2f, 3f], DType.F32, 3);
        using var y = _device.Allocate(DType.F32, 3);
        // The backend's own struct first: a wrong one launched later is still checked.
        using (var ops = new CudaOps(_device, DType.F32, ownsDevice: false, loader))
            ops.Silu(x, y);
        Assert.Equal(Enumerable.Range(0, 3).Select(i => (float)Reference.Silu(new[] { 1f, -2f, 3f }[i])), y.ToArray<float>(), (a, b) => Math.Abs(a - b) < 1e-6);
        var e = Assert.Throws<InvalidOperationException>(() => loader.Launch(DType.F32, 1, 32, 0, new SiluMissingTotal { X = x.Address, Y = y.Address }));
        Assert.Contains("silu_f32", e.Message, StringComparison.Ordinal);
        Assert.Contains("(pp)", e.Message, StringComparison.Ordinal);
        Assert.Contains("(ppi)", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<InvalidOperationException>(() => loader.Launch(DType.BF16, 1, 32, 0, new SiluFloatTotal { X = x.Address, Y = y.Address, Total = 3 }));
        Assert.Contains("silu_bf16", e.Message, StringComparison.Ordinal);
        Assert.Contains("(ppf)", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<InvalidOperationException>(() => loader.Launch(DType.F32, 1, 32, 0, new SiluExtraField { X = x.Address, Y = y.Address, Total = 3, Extra = 1 }));
        Assert.Contains("silu_f32", e.Message, StringComparison.Ordinal);
        Assert.Contains("(ppil)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_emulator_rejects_a_parameter_buffer_of_another_size_naming_the_kernel()
    {
        // Past the C# check (a GPU has none): the driver itself sees a buffer larger than silu's parameters.
        using var loader = new KernelLoader(_device, compiler: null);
        nint f = loader.Function(KernelCatalog.Index(KernelArgs<SiluExtraField>.Kernel, DType.F32));
        using var x = _device.Allocate(DType.F32, 3);
        var e = Assert.Throws<CudaException>(() => _device.Launch(f, 1, 32, 0, new SiluExtraField { X = x.Address, Y = x.Address, Total = 3, Extra = 1 }, "silu_f32"));
        Assert.Contains("does not match kernel 'silu_f32'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_catalog_lists_exactly_the_kernels_the_emulator_built_from_src_kernels_cuda()
    {
        // Without NVRTC too: the emulator's g++ build exported every extern "C" kernel of src/Kernels/cuda/*.cu.
        var built = _device.Emulator!.KernelList().Where(k => k.Source.StartsWith("src/Kernels/cuda/", StringComparison.Ordinal))
            .Select(k => k.Name).Order(StringComparer.Ordinal);
        Assert.Equal(KernelCatalog.AllEntryPoints.Order(StringComparer.Ordinal), built);
        foreach (var module in Enum.GetValues<KernelModule>())
            Assert.All(KernelCatalog.EntryPoints(module), name =>
                Assert.Contains(_device.Emulator.KernelList(), k => k.Name == name && k.Source == "src/Kernels/cuda/" + KernelCatalog.FileName(module)));
    }

    [Fact]
    public void After_the_first_call_ops_allocate_nothing_managed_or_on_the_device()
    {
        using var ops = new CudaOps(_device, DType.BF16);
        using var operands = new EveryOp(ops);
        operands.Run();   // compiles or loads the modules, resolves the functions, sizes the workspace
        _device.Synchronize();
        long deviceAllocations = _device.LiveAllocations, workspace = ops.WorkspaceBytes;
        ulong launches = _device.Emulator!.Counters.Launches;
        long before = GC.GetAllocatedBytesForCurrentThread();
        operands.Run();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        _device.Synchronize();
        Assert.Equal(0, allocated);
        Assert.Equal(deviceAllocations, _device.LiveAllocations);
        Assert.Equal(workspace, ops.WorkspaceBytes);
        Assert.True(_device.Emulator.Counters.Launches > launches);
    }

    [Fact]
    public void The_workspace_only_grows()
    {
        using var ops = new CudaOps(_device, DType.F16);
        long Run(int tokens)
        {
            using var qkv = _device.FromFloats(Reference.Random(tokens * 48, tokens), DType.F16, 1, tokens, 48);
            using var y = _device.Allocate(DType.F16, 1, tokens, 16);
            ops.Attention(qkv, 2, y);
            return ops.WorkspaceBytes;
        }
        long small = Run(8), large = Run(600), again = Run(8);
        Assert.Equal(1 << 20, small);
        Assert.True(large > small, $"{large} bytes after T = 600");   // 2 heads · 600² · (4 + 2) bytes > 1 MiB
        Assert.Equal(large, again);
    }

    [Fact]
    public void Every_module_compiles_without_warnings_and_defines_exactly_the_catalog_entry_points()
    {
        // sm_90 here, through the C# compile path; native/tests/nvrtc_compile_test.cpp covers sm_80 and sm_90.
        var nvrtc = NvrtcOrSkip();
        foreach (var module in Enum.GetValues<KernelModule>())
            foreach (string arch in new[] { "sm_90" })
            {
                var image = nvrtc.Compile(KernelCatalog.Source(module), KernelCatalog.FileName(module),
                    [("prelude.cuh", KernelCatalog.Prelude)], arch, KernelCompiler.Options);
                Assert.True(image.IsCubin && image.Image.Length > 0, $"{module} {arch}: no CUBIN");
                Assert.True(image.Log.Length == 0, $"{module} {arch}: NVRTC log is not empty:\n{image.Log}");
                var entries = EntryRegex().Matches(image.Ptx).Select(m => m.Groups[1].Value).Order(StringComparer.Ordinal);
                Assert.Equal(KernelCatalog.EntryPoints(module).Order(StringComparer.Ordinal), entries);
            }
    }

    [GeneratedRegex(@"\.entry\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(")]
    private static partial Regex EntryRegex();

    [Fact]
    public void The_disk_cache_reuses_valid_entries_and_recompiles_unreadable_or_corrupt_ones()
    {
        var nvrtc = NvrtcOrSkip();
        string dir = _temp.File("kernels");
        string arch = nvrtc.ArchitectureFor(_device.ComputeCapability);
        var first = new KernelCompiler(nvrtc, dir);
        var compiled = first.Get(KernelModule.Random, arch);
        Assert.Equal(KernelImageSource.Compiled, compiled.Source);
        Assert.Equal(1, first.Compilations);
        string path = first.CachePath(KernelModule.Random, arch, compiled.Key)!;
        Assert.True(File.Exists(path));
        Assert.Matches("^random-[0-9a-f]{64}\\.cubin$", Path.GetFileName(path));

        var second = new KernelCompiler(nvrtc, dir);
        var cached = second.Get(KernelModule.Random, arch);
        Assert.Equal(KernelImageSource.DiskCache, cached.Source);
        Assert.Equal(0, second.Compilations);
        Assert.Equal(compiled.Bytes, cached.Bytes);

        // The key covers the architecture (and source, prelude, options, NVRTC version): another target, another entry.
        Assert.NotEqual(first.Key(KernelModule.Random, "sm_80"), compiled.Key);
        Assert.NotEqual(first.Key(KernelModule.Softmax, arch), compiled.Key);

        var intact = File.ReadAllBytes(path);
        void Damaged(string what, byte[] content)
        {
            File.WriteAllBytes(path, content);
            var compiler = new KernelCompiler(nvrtc, dir);
            var image = compiler.Get(KernelModule.Random, arch);
            Assert.True(image.Source == KernelImageSource.Compiled && compiler.Compilations == 1, $"{what}: the entry was trusted");
            Assert.Equal(compiled.Bytes, image.Bytes);
            Assert.Equal(intact, File.ReadAllBytes(path));   // rewritten
        }
        var flipped = (byte[])intact.Clone();
        flipped[^100] ^= 0x40;
        Damaged("a flipped bit in the image", flipped);
        Damaged("a truncated file", intact[..(intact.Length / 2)]);
        Damaged("an empty file", []);
        var otherKey = (byte[])intact.Clone();
        otherKey[20] ^= 1;
        Damaged("a header naming another key", otherKey);

        // A cached image runs: the ops load it (as a CUBIN on the emulator) and compute.
        using var modules = new KernelLoader(_device, new KernelCompiler(nvrtc, dir));
        using var ops = new CudaOps(_device, DType.F32, ownsDevice: false, loader: modules);
        using var y = _device.Allocate(DType.F32, 10);
        ops.RandomNormal(y, 3, 4);
        Assert.Equal(Enumerable.Range(0, 10).Select(i => Philox.Normal(3, 4 + (ulong)i)), y.ToArray<float>());
        Assert.Equal(KernelImageSource.DiskCache, modules.LoadedImage(KernelModule.Random)!.Source);
        Assert.True(modules.LoadedImage(KernelModule.Random)!.IsCubin);
    }

    [Fact]
    public void The_default_cache_lives_under_xdg_cache_home()
    {
        string? dir = KernelCompiler.DefaultCacheDirectory();
        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        string expectedRoot = !string.IsNullOrEmpty(xdg) && Path.IsPathRooted(xdg) ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        Assert.Equal(Path.Combine(expectedRoot, "blockdance", "kernels"), dir);
    }

    [Fact]
    public void Without_nvrtc_the_emulator_runs_the_kernels_from_stub_modules()
    {
        using var modules = new KernelLoader(_device, compiler: null);
        using var ops = new CudaOps(_device, DType.F32, ownsDevice: false, loader: modules);
        float[] x = [-3f, -0.5f, 0f, 0.25f, 4f];
        using var xt = _device.FromFloats(x, DType.F32, x.Length);
        using var yt = _device.Allocate(DType.F32, x.Length);
        ops.Silu(xt, yt);
        var y = yt.ToArray<float>();
        for (int i = 0; i < x.Length; i++)
            Assert.Equal(Reference.Silu(x[i]), y[i], 1e-6);
        var image = modules.LoadedImage(KernelModule.Elementwise)!;
        Assert.Equal(KernelImageSource.EmulatorStub, image.Source);
        Assert.Contains(".entry silu_bf16()", System.Text.Encoding.ASCII.GetString(image.Bytes), StringComparison.Ordinal);
    }

    [Fact]
    public void Launchers_reject_tensors_of_another_type_or_device_naming_the_op()
    {
        using var ops = new CudaOps(_device, DType.BF16);
        using var f32 = _device.Allocate(DType.F32, 4);
        using var bf = _device.Allocate(DType.BF16, 4);
        var e = Assert.Throws<ArgumentException>(() => ops.Silu(f32, bf));
        Assert.Contains("Silu", e.Message, StringComparison.Ordinal);
        Assert.Contains("BF16", e.Message, StringComparison.Ordinal);
        using var host = CpuDevice.Instance.Allocate(DType.BF16, 4);
        e = Assert.Throws<ArgumentException>(() => ops.Add(bf, host, bf));
        Assert.Contains("does not live on this CUDA device", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new CudaOps(_device, DType.F64));
    }

    [Fact]
    public void Backends_open_cuda_emu_with_the_requested_type()
    {
        using var ops = Backends.Open("cuda-emu", activationType: DType.F16);
        Assert.IsType<CudaOps>(ops);
        Assert.Equal(DType.F16, ops.ActivationType);
        Assert.Equal("cuda-emu", ops.Device.Name);
        using var f32 = Backends.Open("CUDA-EMU");
        Assert.Equal(DType.F32, f32.ActivationType);
    }

    [Fact]
    public void Backends_cuda_without_a_gpu_fails_suggesting_cuda_emu()
    {
        if (CudaDevice.IsGpuAvailable(out _))
            Assert.Skip("this machine has a CUDA GPU");
        var e = Assert.Throws<CudaUnavailableException>(() => Backends.Open("cuda"));
        Assert.Contains("cuda-emu", e.Message, StringComparison.Ordinal);
    }

    private static NvrtcCompiler NvrtcOrSkip()
    {
        var nvrtc = NvrtcCompiler.TryLoad();
        if (nvrtc is null)
            Assert.Skip("NVRTC (libnvrtc.so.11.2 / .12 / .13) is not installed");
        return nvrtc;
    }
}
