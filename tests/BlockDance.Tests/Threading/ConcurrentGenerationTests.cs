using BlockDance.Dit;
using BlockDance.Dit.Caching;
using BlockDance.Dit.Pipeline;
using BlockDance.Dit.Sampling;
using BlockDance.Kernels;
using Xunit;

namespace BlockDance.Tests.Threading;

/// <summary>
/// Several generations on one loaded model and one ops object, started from several threads at once, give exactly the
/// bytes of the same generations run one after another (the reference: the sequential runs on the same model). Before
/// the runs took the device's step lock, the shared attention scratch made these differ by up to ~1 on the CPU.
/// Runs alone: it measures nothing, but it drives every core and changes no process-wide setting.
/// </summary>
[Collection(nameof(ProcessWideSettings))]
public sealed class ConcurrentGenerationTests
{
    private static readonly GenerationRequest[] Requests =
    [
        new() { Labels = [1, 2], Steps = 12, Seed = 11, Cache = CachePolicy.None },
        new() { Labels = [3, 0, 5], Steps = 12, Seed = 22, Cache = CachePolicy.Parse("blockdance:n=2") },
        new() { Labels = [7], Steps = 12, Seed = 33, Sampler = SamplerKind.Ancestral, Cache = CachePolicy.Parse("deepcache:n=3") },
        new() { Labels = [4, 4], Steps = 12, Seed = 44, GuidanceScale = 1f, Cache = CachePolicy.Parse("blockdance:n=3") },
    ];

    [Theory]
    [InlineData("cpu")]
    [InlineData("cuda-emu")]
    public void Four_concurrent_generations_give_the_bytes_of_the_sequential_ones(string device)
    {
        using var checkpoint = DitCheckpoint.Open(Fixtures.TinyOriginal);
        using var ops = Backends.Open(device);
        using var model = DitModel.Load(checkpoint, ops);

        var sequential = Requests.Select(r => Generate(model, r)).ToArray();

        for (int round = 0; round < 3; round++)
        {
            using var start = new Barrier(Requests.Length);
            var concurrent = new float[Requests.Length][];
            var threads = Requests.Select((r, i) => new Thread(() =>
            {
                start.SignalAndWait();
                concurrent[i] = Generate(model, r);
            })).ToArray();
            foreach (var t in threads)
                t.Start();
            foreach (var t in threads)
                t.Join();
            for (int i = 0; i < Requests.Length; i++)
            {
                Assert.Equal(sequential[i].Length, concurrent[i].Length);
                int first = Enumerable.Range(0, sequential[i].Length)
                    .FirstOrDefault(j => BitConverter.SingleToInt32Bits(sequential[i][j]) != BitConverter.SingleToInt32Bits(concurrent[i][j]), -1);
                double maxError = sequential[i].Zip(concurrent[i], (a, b) => Math.Abs((double)a - b)).Max();
                Assert.True(first < 0, $"{device}, round {round}, generation {i}: element {first} is {(first < 0 ? 0 : concurrent[i][first])}, " +
                    $"sequentially {(first < 0 ? 0 : sequential[i][first])}; max error {maxError}");
            }
        }
    }

    private static float[] Generate(DitModel model, GenerationRequest request)
    {
        using var run = new SamplingRun(model, request);
        return run.Run();
    }
}
