using BlockDance.Dit;
using BlockDance.Dit.Caching;
using BlockDance.Dit.Pipeline;
using BlockDance.Kernels.Cpu;
using BlockDance.Runtime;
using BlockDance.Runtime.Safetensors;
using Xunit;

namespace BlockDance.Tests.Pipeline;

/// <summary>
/// The library's entry point: <see cref="DitPipeline"/> gives exactly the bytes of the explicit checkpoint → ops →
/// model → <see cref="SamplingRun"/> path, reports every step, stops between steps when cancelled, and finds the
/// bundled model in the documented order. Runs alone: the CPU thread count is process-wide.
/// </summary>
[Collection(nameof(ProcessWideSettings))]
public sealed class PipelineTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static float[] ExplicitRun(string checkpointPath, GenerationRequest request)
    {
        using var checkpoint = DitCheckpoint.Open(checkpointPath);
        using var ops = new CpuOps();
        using var model = DitModel.Load(checkpoint, ops);
        using var run = new SamplingRun(model, request);
        return run.Run();
    }

    public static TheoryData<string, string, float> Checkpoints => new()
    {
        { "dit_tiny_original.safetensors", "none", 4f },
        { "dit_tiny_original.safetensors", "blockdance:n=2", 4f },
        { "dit_tiny_diffusers.safetensors", "deepcache:n=2", 1f },
        { "dit_tiny_p4_original.safetensors", "blockdance:n=3", 2f },
    };

    [Theory]
    [MemberData(nameof(Checkpoints))]
    public void Generate_gives_the_bytes_of_the_explicit_sampling_run(string file, string policy, float guidance)
    {
        var request = new GenerationRequest { Labels = [1, 4, 7], Steps = 12, Seed = 77, GuidanceScale = guidance, Cache = CachePolicy.Parse(policy) };
        float[] expected = ExplicitRun(Fixtures.Path(file), request);
        using var pipeline = DitPipeline.Open(Fixtures.Path(file));
        var result = pipeline.Generate(request, cancellationToken: Ct);
        Assert.Equal(expected, result.Latents);
        var c = pipeline.Config;
        Assert.Equal([3, c.InChannels, c.InputSize, c.InputSize], result.Shape);
        Assert.Equal([1, 4, 7], result.Labels);
        Assert.Equal(12, result.Report.Plan.Steps);
        Assert.Equal(request.Cache.Spec, result.Report.Policy);
        Assert.False(result.IsPixelSpace);
        // A second generation on the same pipeline gives the same bytes (nothing of the first run is left over).
        Assert.Equal(expected, pipeline.Generate(request, cancellationToken: Ct).Latents);
    }

    [Fact]
    public void The_device_and_dtype_options_reach_the_backend()
    {
        // cuda-emu in bf16: the pipeline's result is the explicit CudaOps path's, byte for byte, and differs from f32.
        var request = new GenerationRequest { Labels = [3, 8], Steps = 4, Seed = 9, Cache = CachePolicy.Parse("deepcache:n=2") };
        float[] expected;
        using (var checkpoint = DitCheckpoint.Open(Fixtures.TinyOriginal))
        using (var ops = BlockDance.Kernels.Backends.Open("cuda-emu", 0, DType.BF16))
        using (var model = DitModel.Load(checkpoint, ops))
        using (var run = new SamplingRun(model, request))
            expected = run.Run();
        using var pipeline = DitPipeline.Open(Fixtures.TinyOriginal, new PipelineOptions { Device = DeviceKind.CudaEmulator, DType = DType.BF16 });
        var result = pipeline.Generate(request, cancellationToken: Ct);
        Assert.Equal(expected, result.Latents);
        Assert.Equal(pipeline.Ops.Device.Name, result.Report.Device);
        Assert.Equal(DType.BF16, pipeline.Ops.ActivationType);
        Assert.NotEqual(ExplicitRun(Fixtures.TinyOriginal, request), result.Latents);
    }

    [Fact]
    public void The_bundled_model_opens_by_name_and_generates_what_the_explicit_path_does()
    {
        var request = new GenerationRequest { Labels = [0, 0, 5, 2], Steps = 5, Seed = 2026, Cache = CachePolicy.Parse("blockdance:n=2") };
        string path = DitPipeline.FindBundled() ?? throw new FileNotFoundException("the bundled model is missing from the repository");
        float[] expected = ExplicitRun(path, request);
        using var pipeline = DitPipeline.OpenBundled("shapes", new PipelineOptions { Device = DeviceKind.Cpu });
        Assert.True(pipeline.IsPixelSpace);
        Assert.Equal(pipeline.Config.NumClasses, pipeline.ClassNames.Count);
        Assert.Equal("disc", pipeline.ClassNames[0]);   // models/README.md: class 0 is a disc
        var result = pipeline.Generate(request, cancellationToken: Ct);
        Assert.Equal(expected, result.Latents);

        using var dir = new Fixtures.TempDir();
        result.SaveLatents(dir.File("l.safetensors"));
        using (var f = SafetensorsFile.Open(dir.File("l.safetensors")))
        {
            Assert.Equal(expected, f.ReadFloat32("latent"));
            Assert.Equal([4, 3, 32, 32], f["latent"].ShapeToArray());
            Assert.Equal([0L, 0, 5, 2], f.ReadInt64("labels"));
            Assert.Equal("2026", f.Metadata["seed"]);
            Assert.Equal(request.Cache.Spec, f.Metadata["cache"]);
            Assert.Equal(Path.GetFileName(path), f.Metadata["weights"]);
        }
        result.SaveImageGrid(dir.File("g.png"));
        var png = File.ReadAllBytes(dir.File("g.png"));
        int width = (png[16] << 24) | (png[17] << 16) | (png[18] << 8) | png[19];
        int height = (png[20] << 24) | (png[21] << 16) | (png[22] << 8) | png[23];
        Assert.Equal((3 * (32 + 2) + 2, 2 * (32 + 2) + 2), (height, width));   // rows 0, 5, 2; two columns (class 0 twice)
    }

    [Fact]
    public void The_grid_has_one_row_per_label_in_order_of_first_appearance()
    {
        // Four 1×1 gray images with labels 7, 3, 7, 3 → rows [7: img0, img2], [3: img1, img3].
        float[] images = [-1f, 1f, 0f, 0.5f];
        var grid = GenerationResult.ComposeGrid(images, [7, 3, 7, 3], channels: 1, height: 1, width: 1);
        Assert.Equal((8, 8), (grid.Width, grid.Height));   // 2 cells × (1 pixel + 2 padding) + 2 padding
        byte Pixel(int row, int col) => grid.Pixels[((2 + row * 3) * grid.Width + 2 + col * 3) * 3];
        Assert.Equal(0, Pixel(0, 0));      // −1 → 0
        Assert.Equal(128, Pixel(0, 1));    // 0 → 127.5, rounded
        Assert.Equal(255, Pixel(1, 0));    // 1 → 255
        Assert.Equal(191, Pixel(1, 1));    // 0.5 → 191.25, rounded
    }

    [Fact]
    public void Progress_is_reported_after_every_step_with_the_plan_kinds()
    {
        using var pipeline = DitPipeline.Open(Fixtures.TinyOriginal);
        var seen = new List<GenerationProgress>();
        var result = pipeline.Generate(new GenerationRequest { Labels = [2], Steps = 10, Cache = CachePolicy.Parse("blockdance:n=2") }, new Sync(seen.Add), cancellationToken: Ct);
        Assert.Equal(Enumerable.Range(0, 10), seen.Select(p => p.Step));
        Assert.All(seen, p => Assert.Equal(10, p.Steps));
        Assert.Equal("FFFFCRCRCF", new string(seen.Select(p => StepPlan.Letter(p.Kind)).ToArray()));
        Assert.Equal(result.Report.StepMilliseconds, seen.Select(p => p.Milliseconds));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(9)]   // the last step: a cancelled run returns nothing even when every step ran
    public void Cancelling_from_the_progress_callback_after_step_k_stops_the_run_and_writes_nothing(int k)
    {
        using var dir = new Fixtures.TempDir();
        using var pipeline = DitPipeline.Open(Fixtures.TinyOriginal);
        var request = new GenerationRequest { Labels = [1, 2], Steps = 10, Seed = 5, Cache = CachePolicy.Parse("blockdance:n=2") };
        using var cancel = new CancellationTokenSource();
        var steps = new List<int>();
        var progress = new Sync(p =>
        {
            steps.Add(p.Step);
            if (p.Step == k)
                cancel.Cancel();
        });
        string output = dir.File("latents.safetensors");
        Assert.Throws<OperationCanceledException>(() => pipeline.Generate(request, progress, cancel.Token).SaveLatents(output));
        Assert.Equal(Enumerable.Range(0, k + 1), steps);   // no step after the one that cancelled
        Assert.False(File.Exists(output));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Root));
        // The pipeline is intact: the same request now gives the bytes of an uncancelled run.
        Assert.Equal(ExplicitRun(Fixtures.TinyOriginal, request), pipeline.Generate(request, cancellationToken: Ct).Latents);
    }

    [Fact]
    public void A_token_cancelled_before_the_call_runs_no_step()
    {
        using var pipeline = DitPipeline.Open(Fixtures.TinyOriginal);
        int reported = 0;
        Assert.Throws<OperationCanceledException>(() => pipeline.Generate(new GenerationRequest { Labels = [1] }, new Sync(_ => reported++), new CancellationToken(canceled: true)));
        Assert.Equal(0, reported);
    }

    [Fact]
    public void Generations_on_one_pipeline_from_several_threads_give_the_sequential_bytes()
    {
        using var pipeline = DitPipeline.Open(Fixtures.TinyOriginal, new PipelineOptions { Threads = 1 });
        var requests = Enumerable.Range(0, 4).Select(i => new GenerationRequest
        {
            Labels = [i, i + 1], Steps = 8, Seed = (ulong)i, Cache = CachePolicy.Parse(i % 2 == 0 ? "none" : "blockdance:n=2"),
        }).ToArray();
        var sequential = requests.Select(r => pipeline.Generate(r, cancellationToken: Ct).Latents).ToArray();
        var concurrent = new float[4][];
        Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => concurrent[i] = pipeline.Generate(requests[i], cancellationToken: Ct).Latents);
        for (int i = 0; i < 4; i++)
            Assert.Equal(sequential[i], concurrent[i]);
    }

    [Fact]
    public void Errors_name_the_problem()
    {
        using var dir = new Fixtures.TempDir();
        var missing = Assert.Throws<SafetensorsException>(() => DitPipeline.Open(dir.File("nope.safetensors")));
        Assert.Contains("no such file: " + dir.File("nope.safetensors"), missing.Message, StringComparison.Ordinal);
        var folder = Assert.Throws<SafetensorsException>(() => DitPipeline.Open(dir.Root));
        Assert.Contains("is a folder, not a file", folder.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidRequestException>(() => DitPipeline.OpenBundled("cats"));
        Assert.Throws<InvalidRequestException>(() => DitPipeline.FindBundled("cats"));
        Assert.Throws<InvalidRequestException>(() => DitPipeline.Open(Fixtures.TinyOriginal, new PipelineOptions { DType = DType.F16 }));

        var pipeline = DitPipeline.Open(Fixtures.TinyOriginal);
        var result = pipeline.Generate(new GenerationRequest { Labels = [1], Steps = 2 }, cancellationToken: Ct);
        var notImages = Assert.Throws<BlockDanceException>(() => result.SaveImageGrid(dir.File("x.png")));
        Assert.Contains("latent space", notImages.Message, StringComparison.Ordinal);
        var wrongKind = Assert.Throws<InvalidRequestException>(() => result.SaveLatents(dir.File("x.png")));
        Assert.Contains(".safetensors", wrongKind.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Root));
        pipeline.Dispose();
        pipeline.Dispose();   // twice is fine
        Assert.Throws<ObjectDisposedException>(() => pipeline.Generate(new GenerationRequest { Labels = [1] }, cancellationToken: Ct));
    }

    [Fact]
    public void The_bundled_model_is_looked_up_in_the_documented_order()
    {
        // root/models/F (the repository), root/app/bin (the application) with bin/models/F (the package), cwd/models/F.
        using var dir = new Fixtures.TempDir();
        const string file = "dit-shapes-32.safetensors";
        string app = Path.Combine(dir.Root, "app", "bin"), cwd = Path.Combine(dir.Root, "elsewhere", "cwd");
        string package = Put(Path.Combine(app, "models", file));
        string repository = Put(Path.Combine(dir.Root, "models", file));
        string current = Put(Path.Combine(cwd, "models", file));
        string? Find(string? env) => DitPipeline.FindBundled("shapes", env, app, cwd);

        Assert.Equal("/custom/model.safetensors", Find("/custom/model.safetensors"));   // 1. the environment variable, as given
        Assert.Equal(package, Find(null));                                             // 2. next to the application
        Assert.Equal(package, Find(""));                                               //    (an empty variable counts as unset)
        File.Delete(package);
        Assert.Equal(repository, Find(null));                                          // 3. the nearest parent's models/
        Put(Path.Combine(dir.Root, "app", "models", file));
        Assert.Equal(Path.Combine(dir.Root, "app", "models", file), Find(null));       //    nearest first
        File.Delete(Path.Combine(dir.Root, "app", "models", file));
        File.Delete(repository);
        // The temporary folder's own parents (/tmp, /) have no models/ folder with the file, so the current folder is next.
        Assert.Equal(current, Find(null));                                             // 4. the current folder
        File.Delete(current);
        Assert.Null(Find(null));
    }

    private static string Put(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, [1]);
        return path;
    }

    /// <summary>Reports synchronously on the generating thread (<see cref="Progress{T}"/> posts to the thread pool).</summary>
    private sealed class Sync(Action<GenerationProgress> report) : IProgress<GenerationProgress>
    {
        public void Report(GenerationProgress value) => report(value);
    }
}
