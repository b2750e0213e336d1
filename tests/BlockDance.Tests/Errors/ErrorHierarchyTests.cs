using BlockDance.Dit;
using BlockDance.Dit.Caching;
using BlockDance.Dit.Pipeline;
using BlockDance.Kernels;
using BlockDance.Kernels.Cpu;
using BlockDance.Runtime;
using BlockDance.Runtime.Cuda;
using BlockDance.Runtime.Safetensors;
using Xunit;

namespace BlockDance.Tests.Errors;

/// <summary>
/// Every error the library reports on bad input or state is a <see cref="BlockDanceException"/>, of the subtype for
/// its kind, with a message that names the place (the file, the value, the option).
/// </summary>
public sealed class ErrorHierarchyTests : IDisposable
{
    private readonly Fixtures.TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData(typeof(SafetensorsException))]
    [InlineData(typeof(CheckpointException))]
    [InlineData(typeof(PlanException))]
    [InlineData(typeof(NonFiniteResultException))]
    [InlineData(typeof(InvalidRequestException))]
    [InlineData(typeof(DeviceException))]
    [InlineData(typeof(CudaException))]
    [InlineData(typeof(NvrtcException))]
    [InlineData(typeof(CublasException))]
    [InlineData(typeof(CudaUnavailableException))]
    public void Every_library_error_type_is_a_BlockDanceException(Type type) =>
        Assert.True(typeof(BlockDanceException).IsAssignableFrom(type), $"{type.Name} does not derive from BlockDanceException");

    [Theory]
    [InlineData(typeof(CudaException))]
    [InlineData(typeof(NvrtcException))]
    [InlineData(typeof(CublasException))]
    [InlineData(typeof(CudaUnavailableException))]
    public void Cuda_errors_are_device_errors(Type type) => Assert.True(typeof(DeviceException).IsAssignableFrom(type));

    [Fact]
    public void A_missing_checkpoint_or_a_folder_is_named_with_its_path_not_access_denied()
    {
        string absent = _dir.File("absent.safetensors");
        var e = Assert.Throws<SafetensorsException>(() => DitCheckpoint.Open(absent));
        Assert.Equal($"no such file: {absent}", e.Message);
        e = Assert.Throws<SafetensorsException>(() => DitCheckpoint.Open(_dir.File("no/such/folder/x.safetensors")));
        Assert.StartsWith("no such file: ", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<SafetensorsException>(() => DitCheckpoint.Open(_dir.Root));
        Assert.Equal($"{_dir.Root} is a folder, not a file", e.Message);
        Assert.DoesNotContain("denied", e.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void A_safetensors_file_that_is_not_a_dit_is_a_CheckpointException_naming_the_file()
    {
        string path = _dir.File("other.safetensors");
        new SafetensorsWriter().Add("encoder.weight", [1f, 2f], [2]).Save(path);
        var e = Assert.Throws<CheckpointException>(() => DitCheckpoint.Open(path));
        Assert.StartsWith(path, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_devices_and_types_are_invalid_requests_naming_the_value()
    {
        var e = Assert.Throws<InvalidRequestException>(() => Backends.Open("tpu"));
        Assert.Contains("'tpu'", e.Message, StringComparison.Ordinal);
        Assert.Equal("device", e.Parameter);
        e = Assert.Throws<InvalidRequestException>(() => Backends.Open("cpu", 0, DType.F16));
        Assert.Contains("F16", e.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidRequestException>(() => DTypes.ParseActivationType("f8"));
        Assert.IsAssignableFrom<BlockDanceException>(Assert.Throws<PlanException>(() => CachePolicy.Parse("blockdance:n=x")));
    }

    [Fact]
    public void Bad_generation_requests_are_invalid_requests_naming_the_field()
    {
        using var checkpoint = DitCheckpoint.Open(Fixtures.TinyOriginal);
        using var ops = new CpuOps();
        using var model = DitModel.Load(checkpoint, ops);
        var e = Assert.Throws<InvalidRequestException>(() => new SamplingRun(model, new GenerationRequest { Labels = [] }));
        Assert.Equal("Labels", e.Parameter);
        e = Assert.Throws<InvalidRequestException>(() => new SamplingRun(model, new GenerationRequest { Labels = [1, 5000] }));
        Assert.Contains("5000 (image 1)", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<InvalidRequestException>(() => new SamplingRun(model, new GenerationRequest { Labels = [1], Steps = 0 }));
        Assert.Contains("steps", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<InvalidRequestException>(() => new SamplingRun(model, new GenerationRequest { Labels = [1], LatentSize = 7 }));
        Assert.Equal("LatentSize", e.Parameter);
        // A diverging run: NaN noise in, NaN out, reported as such.
        int n = model.Config.InChannels * model.Config.InputSize * model.Config.InputSize;
        using var run = new SamplingRun(model, new GenerationRequest { Labels = [1], Steps = 2, InitialNoise = Enumerable.Repeat(float.NaN, n).ToArray() });
        Assert.Contains("non-finite", Assert.Throws<NonFiniteResultException>(() => run.Run()).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_failed_driver_call_on_the_emulator_is_a_device_error_naming_the_call()
    {
        using var device = CudaDevice.Open(CudaBackend.Emulator);
        var e = Assert.Throws<CudaException>(() => device.Check(1, "cuSomething(42)"));
        Assert.IsAssignableFrom<DeviceException>(e);
        Assert.StartsWith("cuSomething(42) failed: CUDA_ERROR_INVALID_VALUE", e.Message, StringComparison.Ordinal);
    }
}
