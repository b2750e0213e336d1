using System.Text.RegularExpressions;
using BlockDance.Kernels;
using BlockDance.Kernels.Cuda;
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

    /// <summary>Small operands for every op of one storage type, allocated once.</summary>
    private sealed class EveryOp : IDisposable
    {
        private readonly List<Tensor> _all = [];
        private readonly Tensor _x, _w, _b, _y, _mod, _qkv, _att, _image, _cols, _tokens, _pos, _t, _temb, _table, _ids, _emb,
            _out2, _guided, _latent, _noise, _noise32, _frames, _positions;

        public EveryOp(Device dev, DType type)
        {
            Tensor New(DType t, params int[] shape)
            {
                var values = Reference.Random(shape.Aggregate(1, (a, b) => a * b), _all.Count + 1);
                var tensor = t == DType.I32 ? dev.FromHost<int>(values.Select(v => (int)((v + 1) * 2)).ToArray(), t, shape)
                    : dev.FromFloats(values, t, shape);
                _all.Add(tensor);
                return tensor;
            }
            _x = New(type, 2, 3, 8); _w = New(type, 5, 8); _b = New(type, 5); _y = New(type, 2, 3, 5);
            _mod = New(type, 2, 6 * 8); _qkv = New(type, 2, 3, 24); _att = New(type, 2, 3, 8);
            _image = New(type, 2, 4, 4, 4); _cols = New(type, 2, 4, 16); _tokens = New(type, 2, 4, 16);
            _pos = New(type, 3, 8); _t = New(DType.F32, 2); _temb = New(type, 2, 16);
            _table = New(type, 5, 8); _ids = New(DType.I32, 2); _emb = New(type, 2, 8);
            _out2 = New(type, 4, 8, 4, 4); _guided = New(type, 2, 8, 4, 4); _latent = New(type, 2, 4, 4, 4);
            _noise = New(type, 2, 4, 4, 4); _noise32 = New(DType.F32, 2, 4, 4, 4);
            _frames = New(type, 2, 3, 4, 8); _positions = New(type, 2, 4, 3, 8);
        }

        /// <summary>Calls every IOps method (every kernel of the type, and random_normal_f32).</summary>
        public void Run(IOps ops)
        {
            ops.Linear(_x, _w, _b, _y, Activation.GeluTanh);
            ops.Linear(_x, _w, null, _y);
            ops.Silu(_x, _x);
            ops.Add(_x, _x, _x);
            ops.LayerNormModulate(_x, _mod, 0, 1, 1e-6f, _att);
            ops.GatedResidualAdd(_x, _att, _mod, 2);
            ops.Attention(_qkv, 2, _att);
            ops.Patchify(_image, 2, _cols);
            ops.Unpatchify(_tokens, 2, _image);
            ops.AddPositionEmbedding(_x, _pos);
            ops.SwapFrameTokenAxes(_frames, _positions);
            ops.TimestepEmbedding(_t, 0, _temb);
            ops.EmbeddingLookup(_table, _ids, _emb);
            ops.GuidanceCombine(_out2, 3, 4f, _guided);
            ops.DdimStep(_latent, _guided, new DdimCoefficients(1.1f, 0.5f, 0.9f, 0.3f, 0.1f, true), _noise);
            ops.AncestralStep(_latent, _guided, new AncestralCoefficients(1.1f, 0.5f, 0.3f, 0.6f, -6f, -4f, 1f), _noise);
            ops.RandomNormal(_noise, 1, 2);
            ops.RandomNormal(_noise32, 1, 2);
        }

        public void Dispose()
        {
            foreach (var t in _all)
                t.Dispose();
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
            using (var operands = new EveryOp(_device, type))
                operands.Run(ops);
            _device.Synchronize();
            foreach (var (name, signature) in ops.Modules.CheckedSignatures)
                checkedSignatures[name] = signature;
        }
        var all = Enum.GetValues<KernelModule>().SelectMany(KernelCatalog.EntryPoints).ToList();
        Assert.Equal(48, all.Count);
        Assert.Empty(all.Except(checkedSignatures.Keys));
        foreach (string name in all)
            Assert.True(emulator.KernelSignature(name) == checkedSignatures[name],
                $"{name}: the launcher passes ({checkedSignatures[name]}), the kernel takes ({emulator.KernelSignature(name)})");
    }

    [Fact]
    public void After_the_first_call_ops_allocate_nothing_managed_or_on_the_device()
    {
        using var ops = new CudaOps(_device, DType.BF16);
        using var operands = new EveryOp(_device, DType.BF16);
        operands.Run(ops);   // compiles or loads the modules, resolves the functions, sizes the workspace
        _device.Synchronize();
        long deviceAllocations = _device.LiveAllocations, workspace = ops.WorkspaceBytes;
        ulong launches = _device.Emulator!.Counters.Launches;
        long before = GC.GetAllocatedBytesForCurrentThread();
        operands.Run(ops);
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
        using var modules = new KernelModules(_device, new KernelCompiler(nvrtc, dir));
        using var ops = new CudaOps(_device, DType.F32, ownsDevice: false, modules);
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
        using var modules = new KernelModules(_device, compiler: null);
        using var ops = new CudaOps(_device, DType.F32, ownsDevice: false, modules);
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
