using System.Globalization;
using BlockDance.Analysis.Plotting;
using BlockDance.Runtime.IO;

namespace BlockDance.Analysis.Metrics;

/// <summary>One row of the adjacent-step analysis: block <see cref="Block"/>'s output at <see cref="Step"/> against its output at <c>Step − 1</c>.</summary>
public readonly record struct BlockStepSimilarity(int Step, int Block, double Cosine, double RelativeL1);

/// <summary>
/// Collects the similarity analysis of a sampling run (the BlockDance paper's Fig. 2 and Fig. 5) from block outputs fed
/// one at a time with <see cref="Record"/> (host copies, so it works with any device):
/// <list type="bullet">
/// <item>for every block and step <c>k ≥ 1</c>: the cosine similarity and the relative L1 change
/// <c>‖f(k) − f(k−1)‖₁ / ‖f(k−1)‖₁</c> of the block's output against its own output at step <c>k − 1</c>;</item>
/// <item>for the chosen <see cref="MatrixBlocks"/> (the shallow blocks, e.g. <c>0 … i−1</c>): the step × step cosine
/// similarity matrix of their features, per block and for all of them together (their outputs concatenated).</item>
/// </list>
/// </summary>
/// <remarks>
/// <para>Steps are sampling-order indices (<c>k = 0</c> is the noisiest). Each block's steps must arrive in increasing
/// order; blocks may interleave freely. A comparison needs both steps: when a block is not recorded at some step (a
/// Reuse step skips blocks <c>0 … i−1</c>) there is no row for it at that step or the next, and the matrices hold NaN
/// there, which <see cref="Heatmap"/> draws as "no data".</para>
/// <para>With <c>items &gt; 1</c> a feature tensor <c>(B, T, D)</c> is split into <c>items</c> equal slices (the batch
/// items, e.g. the conditional and unconditional halves with guidance) and every measure is the mean over items of the
/// per-item measure; with 1 the whole tensor is one vector.</para>
/// <para>Memory: the previous step's output of every block (depth × B·T·D floats) plus every step's output of each
/// matrix block (steps × B·T·D floats each), kept in managed arrays; <see cref="RetainedBytes"/> reports it. Matrix dot
/// products are computed as steps arrive (each new step against all earlier ones), so asking for a matrix is cheap.</para>
/// <para>CSV formats (invariant culture, shortest round-trip numbers, <c>\n</c> line ends):
/// <c>block_similarity.csv</c> has the header <c>step,block,cosine,rel_l1</c> and one row per comparison, sorted by step
/// then block, where the row of step <c>k</c> compares steps <c>k</c> and <c>k − 1</c>; <c>step_similarity.csv</c> is
/// the long format <c>step_a,step_b,cosine</c> of the combined matrix: every ordered pair (both orders and the
/// diagonal) of steps at which every matrix block was recorded, sorted by <c>step_a</c> then <c>step_b</c>. Long
/// format was chosen over a wide matrix because it loads directly into a data frame and can pivot to the matrix,
/// and missing pairs are simply absent rather than empty cells.</para>
/// </remarks>
public sealed class SimilarityRecorder
{
    /// <summary>File names written by <see cref="WriteReport"/>.</summary>
    public const string BlockCsvName = "block_similarity.csv", StepCsvName = "step_similarity.csv",
        BlockCosinePngName = "block_cosine.png", BlockRelativeL1PngName = "block_rel_l1.png", StepPngName = "step_similarity.png";

    private readonly int[] _matrixBlocks;
    private readonly int[] _length;          // per block: feature length (0 until first recorded)
    private readonly int[] _lastStep;        // per block: last recorded step, −1 for none
    private readonly float[]?[] _previous;   // per block: features of _lastStep
    private readonly List<BlockStepSimilarity> _rows = [];
    private readonly Dictionary<int, MatrixHistory> _history = [];
    private int _maxStep = -1;

    /// <param name="depth">Number of blocks of the model.</param>
    /// <param name="matrixBlocks">Blocks whose step × step matrix is kept (none by default).</param>
    /// <param name="items">Equal slices (batch items) each feature tensor is split into; measures are means over them.</param>
    public SimilarityRecorder(int depth, IEnumerable<int>? matrixBlocks = null, int items = 1)
    {
        if (depth <= 0)
            throw new ArgumentException($"depth must be positive, not {depth}", nameof(depth));
        if (items <= 0)
            throw new ArgumentException($"items must be positive, not {items}", nameof(items));
        Depth = depth;
        Items = items;
        _matrixBlocks = (matrixBlocks ?? []).Distinct().Order().ToArray();
        foreach (int b in _matrixBlocks)
        {
            if (b < 0 || b >= depth)
                throw new ArgumentException($"matrix block {b} is outside [0, {depth - 1}]", nameof(matrixBlocks));
            _history[b] = new MatrixHistory();
        }
        _length = new int[depth];
        _lastStep = new int[depth];
        Array.Fill(_lastStep, -1);
        _previous = new float[depth][];
    }

    /// <summary>Number of blocks of the model.</summary>
    public int Depth { get; }

    /// <summary>Equal slices (batch items) each feature tensor is split into.</summary>
    public int Items { get; }

    /// <summary>The blocks whose step × step matrix is kept, ascending.</summary>
    public IReadOnlyList<int> MatrixBlocks => _matrixBlocks;

    /// <summary>One more than the largest step recorded (0 before any): the steps axis of the matrices.</summary>
    public int Steps => _maxStep + 1;

    /// <summary>Bytes of feature copies held.</summary>
    public long RetainedBytes =>
        _previous.Sum(p => (long)(p?.Length ?? 0) * sizeof(float)) +
        _history.Values.Sum(h => h.Features.Sum(f => (long)f.Length * sizeof(float)));

    /// <summary>The adjacent-step comparisons so far, sorted by step then block.</summary>
    public IReadOnlyList<BlockStepSimilarity> Rows =>
        _rows.OrderBy(r => r.Step).ThenBy(r => r.Block).ToList();

    /// <summary>
    /// Records block <paramref name="block"/>'s output at step <paramref name="step"/> (copied; the span may be reused
    /// afterwards), comparing it with the block's output at <c>step − 1</c> if that was recorded.
    /// </summary>
    /// <exception cref="ArgumentException">The block or step is out of range, the length differs from the block's earlier outputs or does not split into the items, or a value is not finite.</exception>
    /// <exception cref="InvalidOperationException">The block already has this step or a later one.</exception>
    public void Record(int step, int block, ReadOnlySpan<float> features)
    {
        if ((uint)block >= (uint)Depth)
            throw new ArgumentException($"block {block} is outside [0, {Depth - 1}]", nameof(block));
        if (step < 0)
            throw new ArgumentException($"step must not be negative, not {step}", nameof(step));
        if (features.Length == 0 || features.Length % Items != 0)
            throw new ArgumentException(
                $"block {block}, step {step}: {features.Length} values do not split into {Items} equal, non-empty items", nameof(features));
        if (_length[block] != 0 && features.Length != _length[block])
            throw new ArgumentException(
                $"block {block}, step {step}: {features.Length} values, but the block's earlier outputs had {_length[block]}", nameof(features));
        if (step <= _lastStep[block])
            throw new InvalidOperationException(
                $"block {block}: step {step} comes after step {_lastStep[block]}; each block's steps must be recorded once, in increasing order");
        for (int i = 0; i < features.Length; i++)
            if (!float.IsFinite(features[i]))
                throw new ArgumentException($"block {block}, step {step}: non-finite value {features[i]} at element {i}", nameof(features));

        _length[block] = features.Length;
        int size = features.Length / Items;
        var previous = _previous[block];
        if (previous is not null && _lastStep[block] == step - 1)
        {
            double cosine = 0, relL1 = 0;
            for (int n = 0; n < Items; n++)
            {
                var sums = FeatureSimilarity.Sums(features.Slice(n * size, size), previous.AsSpan(n * size, size));
                cosine += sums.Cosine;
                relL1 += sums.RelativeL1;
            }
            _rows.Add(new BlockStepSimilarity(step, block, cosine / Items, relL1 / Items));
        }
        previous ??= _previous[block] = new float[features.Length];
        features.CopyTo(previous);
        _lastStep[block] = step;
        _maxStep = Math.Max(_maxStep, step);

        if (_history.TryGetValue(block, out var history))
            history.Add(step, features, Items);
    }

    /// <summary>Cosine similarity per block and step, <c>[Depth, Steps]</c>; column k compares steps k and k − 1 (column 0 and gaps are NaN).</summary>
    public double[,] BlockCosineMatrix() => BlockMatrix(r => r.Cosine);

    /// <summary>Relative L1 change per block and step, <c>[Depth, Steps]</c>, laid out as <see cref="BlockCosineMatrix"/>.</summary>
    public double[,] BlockRelativeL1Matrix() => BlockMatrix(r => r.RelativeL1);

    /// <summary>
    /// Step × step cosine similarity <c>[Steps, Steps]</c> of one matrix block's output; NaN where either step was not
    /// recorded for it.
    /// </summary>
    public double[,] StepMatrix(int block)
    {
        if (!_history.ContainsKey(block))
            throw new ArgumentException($"block {block} is not a matrix block (those are [{string.Join(", ", _matrixBlocks)}])", nameof(block));
        return StepMatrixOf([block]);
    }

    /// <summary>
    /// Step × step cosine similarity <c>[Steps, Steps]</c> of all matrix blocks together (their outputs concatenated
    /// per item); NaN where some matrix block lacks either step.
    /// </summary>
    public double[,] StepMatrix()
    {
        if (_matrixBlocks.Length == 0)
            throw new InvalidOperationException("no matrix blocks were chosen; pass them to the constructor");
        return StepMatrixOf(_matrixBlocks);
    }

    /// <summary>Writes <c>block_similarity.csv</c>'s content: <c>step,block,cosine,rel_l1</c>, sorted by step then block.</summary>
    public void WriteBlockCsv(TextWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteLine("step,block,cosine,rel_l1");
        foreach (var r in Rows)
            writer.WriteLine($"{r.Step},{r.Block},{Format(r.Cosine)},{Format(r.RelativeL1)}");
    }

    /// <summary>
    /// Writes <c>step_similarity.csv</c>'s content: <c>step_a,step_b,cosine</c> for every ordered pair of recorded steps
    /// of the combined matrix (or of one matrix block's when <paramref name="block"/> is given).
    /// </summary>
    public void WriteStepCsv(TextWriter writer, int? block = null)
    {
        ArgumentNullException.ThrowIfNull(writer);
        var matrix = block is int b ? StepMatrix(b) : StepMatrix();
        writer.WriteLine("step_a,step_b,cosine");
        for (int s = 0; s < matrix.GetLength(0); s++)
            for (int t = 0; t < matrix.GetLength(1); t++)
                if (!double.IsNaN(matrix[s, t]))
                    writer.WriteLine($"{s},{t},{Format(matrix[s, t])}");
    }

    /// <summary>
    /// Writes the analysis into <paramref name="directory"/> (created if needed), each file atomically:
    /// <c>block_similarity.csv</c>, heatmaps <c>block_cosine</c> and <c>block_rel_l1</c> (x = step, y = block, the
    /// paper's Fig. 2) when some step was compared, and with matrix blocks <c>step_similarity.csv</c> and the heatmap
    /// <c>step_similarity</c> (the paper's Fig. 5); each heatmap as PNG and/or SVG as <paramref name="options"/> say,
    /// in their colour scale and with their cache window marked. Returns the paths written.
    /// </summary>
    public IReadOnlyList<string> WriteReport(string directory, SimilarityReportOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        options ??= new SimilarityReportOptions();
        Directory.CreateDirectory(directory);
        var written = new List<string>();
        void Text(string name, Action<TextWriter> write)
        {
            string path = Path.Combine(directory, name);
            AtomicFile.WriteText(path, write);
            written.Add(path);
        }
        void Image(string pngName, double[,] matrix, HeatmapOptions heatmap)
        {
            foreach (var (format, extension) in new[] { (PlotFormats.Png, ".png"), (PlotFormats.Svg, ".svg") })
            {
                if (!options.Formats.HasFlag(format))
                    continue;
                string path = Path.Combine(directory, Path.ChangeExtension(pngName, extension));
                Heatmap.Save(path, matrix, heatmap);
                written.Add(path);
            }
        }

        Text(BlockCsvName, WriteBlockCsv);
        var window = options.Window;
        if (_rows.Count > 0)
        {
            // Column 0 (step 0 has no previous step) is dropped from the plots, so the x axis starts at step 1.
            var axes = new HeatmapOptions
            {
                XLabel = "step (compared with step - 1)",
                YLabel = "block",
                XStart = 1,
                Scale = options.Scale,
                Width = 1000,
                Height = 520,
            };
            if (window is not null && window.Boundary <= Depth)
            {
                var reuse = window.ReuseSteps.Where(k => k >= 1 && k < Steps).ToArray();
                axes = axes with
                {
                    Outlines = [new HeatmapOutline(Math.Max(1, window.First), Math.Min(Steps - 1, window.Last), 0, window.Boundary - 1)],
                    OutlineLabel = $"cache window of {window.Policy}",
                    Markers = reuse.Select(k => (k, 0)).ToArray(),
                    MarkerLabel = $"steps that reuse blocks 0-{window.Boundary - 1}",
                    RowRule = window.Boundary,
                    RowRuleLabel = $"boundary: reuse starts at block {window.Boundary}",
                };
            }
            Image(BlockCosinePngName, DropFirstColumn(BlockCosineMatrix()),
                axes with { Title = "Cosine similarity of block outputs, adjacent steps", ColorBarLabel = "cosine" });
            Image(BlockRelativeL1PngName, DropFirstColumn(BlockRelativeL1Matrix()),
                axes with { Title = "Relative L1 change of block outputs, adjacent steps", ColorBarLabel = "relative L1" });
        }
        if (_matrixBlocks.Length > 0 && Steps > 0)
        {
            Text(StepCsvName, w => WriteStepCsv(w));
            var heatmap = new HeatmapOptions
            {
                Title = $"Cosine similarity between steps, {DescribeBlocks(_matrixBlocks)}",
                XLabel = "step",
                YLabel = "step",
                ColorBarLabel = "cosine",
                Scale = options.Scale,
                Width = 860,
                Height = 800,
            };
            if (window is not null)
            {
                int last = Math.Min(Steps - 1, window.Last);
                heatmap = heatmap with
                {
                    Outlines = window.First <= last ? [new HeatmapOutline(window.First, last, window.First, last)] : [],
                    OutlineLabel = $"cache window of {window.Policy}",
                    Markers = window.ReuseSteps.Where(k => k < Steps).Select(k => (k, k)).ToArray(),
                    MarkerLabel = "steps that reuse the cache",
                };
            }
            Image(StepPngName, StepMatrix(), heatmap);
        }
        return written;
    }

    private double[,] BlockMatrix(Func<BlockStepSimilarity, double> value)
    {
        var matrix = new double[Depth, Steps];
        for (int b = 0; b < Depth; b++)
            for (int k = 0; k < Steps; k++)
                matrix[b, k] = double.NaN;
        foreach (var r in _rows)
            matrix[r.Block, r.Step] = value(r);
        return matrix;
    }

    private double[,] StepMatrixOf(int[] blocks)
    {
        int steps = Steps;
        var matrix = new double[steps, steps];
        var dot = new double[Items];
        var normS = new double[Items];
        var normT = new double[Items];
        for (int s = 0; s < steps; s++)
        {
            for (int t = 0; t < steps; t++)
            {
                Array.Clear(dot);
                Array.Clear(normS);
                Array.Clear(normT);
                bool complete = true;
                foreach (int b in blocks)
                {
                    var h = _history[b];
                    if (!h.Norms.TryGetValue(s, out var ns) || !h.Norms.TryGetValue(t, out var nt))
                    {
                        complete = false;
                        break;
                    }
                    var d = s == t ? ns : h.Dots[(Math.Min(s, t), Math.Max(s, t))];
                    for (int n = 0; n < Items; n++)
                    {
                        dot[n] += d[n];
                        normS[n] += ns[n];
                        normT[n] += nt[n];
                    }
                }
                if (!complete)
                {
                    matrix[s, t] = double.NaN;
                    continue;
                }
                double cosine = 0;
                for (int n = 0; n < Items; n++)
                    cosine += FeatureSimilarity.Cos(dot[n], normS[n], normT[n]);
                matrix[s, t] = s == t ? 1 : cosine / Items;
            }
        }
        return matrix;
    }

    private static double[,] DropFirstColumn(double[,] matrix)
    {
        int rows = matrix.GetLength(0), columns = matrix.GetLength(1) - 1;
        var result = new double[rows, columns];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
                result[r, c] = matrix[r, c + 1];
        return result;
    }

    /// <summary>"block 3", "blocks 0-4", "blocks 0, 2, 5".</summary>
    private static string DescribeBlocks(int[] blocks)
    {
        if (blocks.Length == 1)
            return $"block {blocks[0]}";
        bool contiguous = blocks[^1] - blocks[0] == blocks.Length - 1;
        return contiguous ? $"blocks {blocks[0]}-{blocks[^1]}" : $"blocks {string.Join(", ", blocks)}";
    }

    private static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>Every recorded step of one matrix block, with per-item squared norms and the dot products between steps.</summary>
    private sealed class MatrixHistory
    {
        public List<float[]> Features { get; } = [];
        public List<int> StepsRecorded { get; } = [];
        public Dictionary<int, double[]> Norms { get; } = [];
        public Dictionary<(int Earlier, int Later), double[]> Dots { get; } = [];

        public void Add(int step, ReadOnlySpan<float> features, int items)
        {
            int size = features.Length / items;
            var norms = new double[items];
            for (int n = 0; n < items; n++)
                norms[n] = FeatureSimilarity.Dot(features.Slice(n * size, size), features.Slice(n * size, size));
            for (int j = 0; j < Features.Count; j++)
            {
                var dots = new double[items];
                for (int n = 0; n < items; n++)
                    dots[n] = FeatureSimilarity.Dot(features.Slice(n * size, size), Features[j].AsSpan(n * size, size));
                Dots[(StepsRecorded[j], step)] = dots;
            }
            Norms[step] = norms;
            Features.Add(features.ToArray());
            StepsRecorded.Add(step);
        }
    }
}
