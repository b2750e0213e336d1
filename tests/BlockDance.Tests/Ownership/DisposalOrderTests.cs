using BlockDance.Dit;
using BlockDance.Dit.Caching;
using BlockDance.Dit.Pipeline;
using BlockDance.Kernels;
using BlockDance.Runtime;
using BlockDance.Runtime.Safetensors;
using Xunit;

namespace BlockDance.Tests.Ownership;

/// <summary>
/// Whatever order a user disposes the checkpoint, the ops (and their device), the model, a run and tensors in, using
/// what is left gives either the correct output (the bytes of a run in the right order) or an
/// <see cref="ObjectDisposedException"/> that names what was disposed: never a crash. On the CPU device the weights
/// are views of the memory-mapped checkpoint, so "checkpoint first" used to unmap them under the model (a segfault).
/// </summary>
[Collection(nameof(ProcessWideSettings))]
public sealed class DisposalOrderTests
{
    private static readonly GenerationRequest Request = new()
    {
        Labels = [1, 6], Steps = 6, Seed = 5, Cache = CachePolicy.Parse("blockdance:n=2"),
    };

    /// <summary>The reference: the same generation with everything disposed in the right order (last opened, first disposed).</summary>
    private static float[] Reference(string device)
    {
        using var checkpoint = DitCheckpoint.Open(Fixtures.TinyOriginal);
        using var ops = Backends.Open(device);
        using var model = DitModel.Load(checkpoint, ops);
        using var run = new SamplingRun(model, Request);
        return run.Run();
    }

    private static void AssertSameBytes(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                $"element {i}: {actual[i]}, expected {expected[i]}");
    }

    [Theory]
    [InlineData("cpu")]
    [InlineData("cuda-emu")]
    public void Checkpoint_disposed_before_the_model_is_used_gives_the_correct_output(string device)
    {
        var expected = Reference(device);
        using var ops = Backends.Open(device);
        DitModel model;
        using (var checkpoint = DitCheckpoint.Open(Fixtures.TinyOriginal))
            model = DitModel.Load(checkpoint, ops);
        // Unmapped here before the fix, on the CPU device: the weights were views of the mapping.
        using (model)
        using (var run = new SamplingRun(model, Request))
            AssertSameBytes(expected, run.Run());
    }

    [Theory]
    [InlineData("cpu")]
    [InlineData("cuda-emu")]
    public void Model_disposed_before_its_run_leaves_the_run_correct_and_frees_the_weights_with_it(string device)
    {
        var expected = Reference(device);
        using var checkpoint = DitCheckpoint.Open(Fixtures.TinyOriginal);
        using var ops = Backends.Open(device);
        var model = DitModel.Load(checkpoint, ops);
        var weight = model.Blocks[0].Qkv.Weight;
        var run = new SamplingRun(model, Request);
        model.Dispose();
        model.Dispose();   // twice: harmless
        Assert.False(model.IsDisposed);   // the run still holds it
        AssertSameBytes(expected, run.Run());
        run.Dispose();
        run.Dispose();
        Assert.True(model.IsDisposed);
        var e = Assert.Throws<ObjectDisposedException>(() => new SamplingRun(model, Request));
        Assert.Contains("DitModel", e.Message, StringComparison.Ordinal);
        Assert.Throws<ObjectDisposedException>(() => model.CreateActivations(1, 8, 8));
        var w = Assert.Throws<ObjectDisposedException>(() => weight.ToFloatArray());
        Assert.Contains("disposed", w.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("cpu")]
    [InlineData("cuda-emu")]
    public void A_disposed_run_refuses_to_step(string device)
    {
        using var checkpoint = DitCheckpoint.Open(Fixtures.TinyOriginal);
        using var ops = Backends.Open(device);
        using var model = DitModel.Load(checkpoint, ops);
        var run = new SamplingRun(model, Request);
        var latent = run.Latent;
        run.Step();
        run.Dispose();
        Assert.Contains("SamplingRun", Assert.Throws<ObjectDisposedException>(() => run.Step()).Message, StringComparison.Ordinal);
        Assert.Throws<ObjectDisposedException>(() => run.Run());
        Assert.Throws<ObjectDisposedException>(() => latent.ToFloatArray());
        // The model is untouched: a new run on it is still correct.
        using var again = new SamplingRun(model, Request);
        Assert.Equal(Reference(device).Length, again.Run().Length);
    }

    [Theory]
    [InlineData("cpu")]
    [InlineData("cuda-emu")]
    public void Ops_disposed_first_give_the_correct_output_or_an_ObjectDisposedException(string device)
    {
        var expected = Reference(device);
        using var checkpoint = DitCheckpoint.Open(Fixtures.TinyOriginal);
        var ops = Backends.Open(device);
        using var model = DitModel.Load(checkpoint, ops);
        using var run = new SamplingRun(model, Request);
        ops.Dispose();
        ops.Dispose();
        // The device stays alive for the model's and the run's memory; the CPU ops then still compute, the CUDA ops
        // have unloaded their kernels and say so.
        try
        {
            AssertSameBytes(expected, run.Run());
            Assert.Equal("cpu", device);
        }
        catch (ObjectDisposedException e)
        {
            Assert.NotEqual("cpu", device);
            Assert.Contains("CudaOps", e.Message, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("cpu")]
    [InlineData("cuda-emu")]
    public void Everything_disposed_in_the_wrong_order_then_used_never_crashes(string device)
    {
        var checkpoint = DitCheckpoint.Open(Fixtures.TinyOriginal);
        var ops = Backends.Open(device);
        var model = DitModel.Load(checkpoint, ops);
        var run = new SamplingRun(model, Request);
        checkpoint.Dispose();
        ops.Dispose();
        model.Dispose();
        try
        {
            run.Step();     // still leased: runs on the cpu
            Assert.Equal("cpu", device);
        }
        catch (ObjectDisposedException e)
        {
            Assert.Contains("CudaOps", e.Message, StringComparison.Ordinal);   // the CUDA ops unloaded their kernels
        }
        run.Dispose();
        checkpoint.Dispose();
        model.Dispose();
        ops.Dispose();
        Assert.Throws<ObjectDisposedException>(() => run.Step());
        Assert.Throws<ObjectDisposedException>(() => new SamplingRun(model, Request));
        Assert.Throws<ObjectDisposedException>(() => model.Blocks[1].Fc1.Weight.ToFloatArray());
        if (device != "cpu")   // the cpu device is the process's one host device, never disposed
            Assert.Throws<ObjectDisposedException>(() => ops.Device.Allocate(DType.F32, 4));
    }

    [Theory]
    [InlineData("cpu")]
    [InlineData("cuda-emu")]
    public void A_view_used_after_its_owner_was_disposed_throws(string device)
    {
        using var ops = Backends.Open(device);
        var owner = ops.Device.FromFloats([1, 2, 3, 4, 5, 6], DType.F32, 2, 3);
        var view = owner.Slice(1, 1).Reshape(3);
        Assert.Equal([4f, 5f, 6f], view.ToFloatArray());
        owner.Dispose();
        owner.Dispose();
        var e = Assert.Throws<ObjectDisposedException>(() => view.ToFloatArray());
        Assert.Contains("the tensor that owns it was disposed", e.Message, StringComparison.Ordinal);
        Assert.Contains("[3]", e.Message, StringComparison.Ordinal);
        Assert.Throws<ObjectDisposedException>(() => owner.ToFloatArray());
        Assert.Throws<ObjectDisposedException>(() => view.Address);
        Assert.Throws<ObjectDisposedException>(() => owner.View(0, 2));
        view.Dispose();   // a view frees nothing, and disposing it is harmless
    }

    [Fact]
    public void A_cuda_device_outlives_its_owner_while_its_tensors_live()
    {
        var ops = Backends.Open("cuda-emu");
        var device = ops.Device;
        long before = device.LiveAllocations;
        var t = device.FromFloats([1, 2, 3], DType.F32, 3);
        ops.Dispose();   // the ops own the device: the owner's reference goes
        Assert.True(device.IsDisposed);
        Assert.Equal([1f, 2f, 3f], t.ToFloatArray());   // the context is still there for the tensor
        Assert.Throws<ObjectDisposedException>(() => device.Allocate(DType.F32, 3));
        t.Dispose();     // the last reference: the context goes now
        Assert.Equal(before, device.LiveAllocations);
        Assert.Contains("cuda-emu", Assert.Throws<ObjectDisposedException>(() => device.Synchronize()).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_checkpoint_tensor_used_after_the_file_was_disposed_throws_naming_the_file()
    {
        var file = SafetensorsFile.Open(Fixtures.TinyOriginal);
        var t = file.AsCpuTensor("x_embedder.proj.bias");
        Assert.Equal(file.ReadFloat32("x_embedder.proj.bias"), t.ToFloatArray());
        file.Dispose();
        file.Dispose();
        var e = Assert.Throws<ObjectDisposedException>(() => t.ToFloatArray());
        Assert.Contains(Fixtures.TinyOriginal, e.Message, StringComparison.Ordinal);
        Assert.Throws<ObjectDisposedException>(() => t.AsSpan<float>());
    }
}
