using BlockDance.Analysis.Metrics;
using Xunit;

namespace BlockDance.Tests.Metrics;

public sealed class SimilarityRecorderTests : IDisposable
{
    private readonly MetricsFiles.Scratch _dir = new();

    public void Dispose() => _dir.Dispose();

    // A tiny synthetic run: 2 blocks, 2-element features, steps 0–4, block 0 skipped at step 3 (as a Reuse step
    // skips the shallow blocks), with values whose cosines and relative L1 changes are exact in binary.
    private static readonly (int Step, int Block, float[] Features)[] Sequence =
    [
        (0, 0, [1, 0]), (0, 1, [3, 4]),
        (1, 0, [0, 1]), (1, 1, [6, 8]),     // block 0: cos 0, L1 2/1;   block 1: cos 1, L1 7/7
        (2, 0, [0, -1]), (2, 1, [0, 10]),   // block 0: cos −1, L1 2/1;  block 1: cos 80/100, L1 8/14
        (3, 1, [0, 5]),                     // block 1: cos 1, L1 5/10
        (4, 0, [1, 1]), (4, 1, [0, 5]),     // block 0: no row (step 3 missing); block 1: cos 1, L1 0
    ];

    private static SimilarityRecorder Recorded(int[]? matrixBlocks = null)
    {
        var recorder = new SimilarityRecorder(depth: 2, matrixBlocks);
        foreach (var (step, block, features) in Sequence)
            recorder.Record(step, block, features);
        return recorder;
    }

    [Fact]
    public void Block_csv_has_one_row_per_adjacent_pair()
    {
        var recorder = Recorded();
        var writer = new StringWriter { NewLine = "\n" };
        recorder.WriteBlockCsv(writer);
        Assert.Equal(
            """
            step,block,cosine,rel_l1
            1,0,0,2
            1,1,1,1
            2,0,-1,2
            2,1,0.8,0.5714285714285714
            3,1,1,0.5
            4,1,1,0

            """.ReplaceLineEndings("\n"),
            writer.ToString());
        Assert.Equal(5, recorder.Steps);

        var cosine = recorder.BlockCosineMatrix();
        Assert.Equal([2, 5], new[] { cosine.GetLength(0), cosine.GetLength(1) });
        Assert.True(double.IsNaN(cosine[0, 0]) && double.IsNaN(cosine[1, 0]));  // step 0 has no previous step
        Assert.Equal(-1, cosine[0, 2]);
        Assert.True(double.IsNaN(cosine[0, 3]) && double.IsNaN(cosine[0, 4]));  // block 0 skipped step 3
        Assert.Equal(0.5, recorder.BlockRelativeL1Matrix()[1, 3]);
    }

    [Fact]
    public void Step_matrix_of_one_block_and_of_several()
    {
        var recorder = Recorded([0, 1]);
        var m0 = recorder.StepMatrix(0);
        double r = 1 / Math.Sqrt(2);
        double nan = double.NaN;
        double[,] expected0 =
        {
            { 1, 0, 0, nan, r },
            { 0, 1, -1, nan, r },
            { 0, -1, 1, nan, -r },
            { nan, nan, nan, nan, nan },
            { r, r, -r, nan, 1 },
        };
        AssertMatrix(expected0, m0);

        // All matrix blocks together: the cosine of the concatenated outputs, where both blocks have both steps.
        var combined = recorder.StepMatrix();
        for (int s = 0; s < 5; s++)
        {
            for (int t = 0; t < 5; t++)
            {
                var fs = Concatenated(s);
                var ft = Concatenated(t);
                double want = fs is null || ft is null ? nan : s == t ? 1 : FeatureSimilarity.CosineSimilarity(fs, ft);
                Assert.Equal(want, combined[s, t], 1e-15);
            }
        }

        var writer = new StringWriter { NewLine = "\n" };
        recorder.WriteStepCsv(writer);
        string[] lines = writer.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("step_a,step_b,cosine", lines[0]);
        Assert.Equal(1 + 4 * 4, lines.Length);                        // steps 0, 1, 2, 4: every ordered pair
        Assert.Equal("0,0,1", lines[1]);
        Assert.DoesNotContain(lines, l => l.StartsWith("3,", StringComparison.Ordinal) || l.Contains(",3,", StringComparison.Ordinal));
        Assert.Contains($"1,2,{combined[1, 2].ToString("R", System.Globalization.CultureInfo.InvariantCulture)}", lines);
    }

    private static float[]? Concatenated(int step)
    {
        var parts = Sequence.Where(e => e.Step == step).OrderBy(e => e.Block).ToList();
        return parts.Count == 2 ? parts.SelectMany(e => e.Features).ToArray() : null;
    }

    [Fact]
    public void Items_are_compared_separately_and_averaged()
    {
        var recorder = new SimilarityRecorder(depth: 1, matrixBlocks: [0], items: 2);
        recorder.Record(0, 0, [3, 4, 3, 4]);
        recorder.Record(1, 0, [6, 8, -3, -4]);  // item 0: cos 1, L1 7/7; item 1: cos −1, L1 14/7
        var row = Assert.Single(recorder.Rows);
        Assert.Equal(new BlockStepSimilarity(1, 0, 0, 1.5), row);
        Assert.Equal(0.0, recorder.StepMatrix()[0, 1], 1e-15);
        Assert.Equal(0.0, recorder.StepMatrix()[1, 0], 1e-15);
    }

    [Fact]
    public void Rejects_out_of_order_or_malformed_records()
    {
        var recorder = new SimilarityRecorder(depth: 2, items: 2);
        recorder.Record(3, 0, [1, 2, 3, 4]);
        Assert.Throws<InvalidOperationException>(() => recorder.Record(3, 0, [1, 2, 3, 4]));
        Assert.Throws<InvalidOperationException>(() => recorder.Record(2, 0, [1, 2, 3, 4]));
        Assert.Throws<ArgumentException>(() => recorder.Record(4, 0, [1, 2]));              // length changed
        Assert.Throws<ArgumentException>(() => recorder.Record(4, 1, [1, 2, 3]));           // not 2 items
        Assert.Throws<ArgumentException>(() => recorder.Record(4, 2, [1, 2, 3, 4]));        // no block 2
        Assert.Throws<ArgumentException>(() => recorder.Record(-1, 1, [1, 2, 3, 4]));
        var e = Assert.Throws<ArgumentException>(() => recorder.Record(4, 1, [1, float.NaN, 3, 4]));
        Assert.Contains("block 1, step 4", e.Message);
        Assert.Throws<ArgumentException>(() => new SimilarityRecorder(depth: 2, matrixBlocks: [2]));
        Assert.Throws<InvalidOperationException>(() => recorder.StepMatrix());
        Assert.Throws<ArgumentException>(() => recorder.StepMatrix(0));
        // A rejected record changes nothing: step 4 of block 0 can still be recorded.
        recorder.Record(4, 0, [1, 2, 3, 5]);
        Assert.Single(recorder.Rows);
    }

    [Fact]
    public void Copies_the_features()
    {
        var recorder = new SimilarityRecorder(depth: 1, matrixBlocks: [0]);
        float[] buffer = [1, 0];
        recorder.Record(0, 0, buffer);
        buffer[0] = 0;
        buffer[1] = 1;  // the caller reuses its buffer for the next step
        recorder.Record(1, 0, buffer);
        Assert.Equal(0.0, recorder.Rows[0].Cosine);
        Assert.Equal(0.0, recorder.StepMatrix()[0, 1]);
        Assert.Equal(2 * 2 * sizeof(float) + 2 * sizeof(float), recorder.RetainedBytes);
    }

    [Fact]
    public void Writes_the_report()
    {
        var recorder = Recorded([0, 1]);
        string dir = Path.Combine(_dir.Path, "analysis");
        var written = recorder.WriteReport(dir);
        Assert.Equal(
            new[] { "block_cosine.png", "block_rel_l1.png", "block_similarity.csv", "step_similarity.csv", "step_similarity.png" },
            Directory.GetFiles(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal(5, written.Count);
        var csv = new StringWriter { NewLine = "\n" };
        recorder.WriteBlockCsv(csv);
        Assert.Equal(csv.ToString(), File.ReadAllText(Path.Combine(dir, "block_similarity.csv")));
        foreach (string png in written.Where(p => p.EndsWith(".png", StringComparison.Ordinal)))
        {
            var image = PngFile.Decode(File.ReadAllBytes(png));
            Assert.True(image.Width >= 500, $"{png} is {image.Width} px wide");
        }
    }

    [Fact]
    public void Writes_svg_too_and_marks_the_cache_window()
    {
        var recorder = Recorded([0, 1]);
        string dir = Path.Combine(_dir.Path, "both");
        var window = new CacheWindow(1, 2, [2], 1, "test-policy");
        var written = recorder.WriteReport(dir, new SimilarityReportOptions { Formats = PlotFormats.Both, Window = window, Scale = Analysis.Plotting.ColorScale.Log });
        Assert.Equal(8, written.Count);
        foreach (string name in new[] { "block_cosine", "block_rel_l1", "step_similarity" })
        {
            var image = PngFile.Decode(File.ReadAllBytes(Path.Combine(dir, name + ".png")));
            Assert.True(image.Width >= 500, $"{name}.png is {image.Width} px wide");
            string svg = File.ReadAllText(Path.Combine(dir, name + ".svg"));
            Assert.Contains("cache window of test-policy", svg, StringComparison.Ordinal);
            Assert.Contains("(log scale)", svg, StringComparison.Ordinal);
        }
        Assert.Contains("boundary: reuse starts at block 1", File.ReadAllText(Path.Combine(dir, "block_cosine.svg")), StringComparison.Ordinal);
    }

    [Fact]
    public void Report_without_comparisons_writes_only_the_header()
    {
        var recorder = new SimilarityRecorder(depth: 3);
        recorder.Record(0, 1, [1, 2]);
        var written = recorder.WriteReport(_dir.Path);
        Assert.Equal([Path.Combine(_dir.Path, "block_similarity.csv")], written);
        Assert.Equal("step,block,cosine,rel_l1\n", File.ReadAllText(written[0]));
    }

    private static void AssertMatrix(double[,] expected, double[,] actual)
    {
        Assert.Equal(expected.GetLength(0), actual.GetLength(0));
        Assert.Equal(expected.GetLength(1), actual.GetLength(1));
        for (int i = 0; i < expected.GetLength(0); i++)
            for (int j = 0; j < expected.GetLength(1); j++)
                Assert.True(double.IsNaN(expected[i, j]) ? double.IsNaN(actual[i, j]) : Math.Abs(expected[i, j] - actual[i, j]) <= 1e-15,
                    $"[{i}, {j}]: expected {expected[i, j]}, got {actual[i, j]}");
    }
}
