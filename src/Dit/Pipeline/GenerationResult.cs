using System.Globalization;
using BlockDance.Dit.Sampling;
using BlockDance.Runtime;
using BlockDance.Runtime.Imaging;
using BlockDance.Runtime.IO;
using BlockDance.Runtime.Safetensors;

namespace BlockDance.Dit.Pipeline;

/// <summary>
/// What <see cref="DitPipeline.Generate"/> produced: the final latents (for a pixel-space model, the images), their
/// labels and the run report, with helpers to save them. Holds host memory only; nothing to dispose.
/// </summary>
public sealed class GenerationResult
{
    /// <summary>The <c>format</c> metadata of a latents file written by <see cref="SaveLatents"/>.</summary>
    public const string LatentsFormat = "blockdance.latent/1";

    private readonly GenerationRequest _request;
    private readonly string _weightsName;

    internal GenerationResult(float[] latents, int[] shape, GenerationRequest request, RunReport report, string weightsName, bool isPixelSpace)
    {
        Latents = latents;
        Shape = shape;
        Labels = request.Labels.ToArray();
        Report = report;
        IsPixelSpace = isPixelSpace;
        _request = request;
        _weightsName = weightsName;
    }

    /// <summary>The final latents, (n, C, H, W) row-major, or (n, F, C, H, W) for a video model; for a pixel-space model
    /// the images (frames), about [−1, 1].</summary>
    public float[] Latents { get; }

    /// <summary>The shape of <see cref="Latents"/>: [n, C, H, W], or [n, F, C, H, W] for a video model.</summary>
    public IReadOnlyList<int> Shape { get; }

    /// <summary>The class label of each image, as requested.</summary>
    public IReadOnlyList<int> Labels { get; }

    /// <summary>What the run did and cost: the step plan, per-step times, MACs, cache bytes.</summary>
    public RunReport Report { get; }

    /// <summary>True when the model works on pixels, so <see cref="Latents"/> are images (<see cref="SaveImageGrid"/> works).</summary>
    public bool IsPixelSpace { get; }

    /// <summary>
    /// Writes the latents as safetensors: <c>latent</c> (F32 [n, C, H, W], or [n, F, C, H, W] for clips), <c>labels</c> (I64 [n]) and metadata
    /// (format, weights file name, seed, steps, sampler, eta, guidance scale, cache policy). Written atomically (see
    /// <see cref="AtomicFile"/>): a failure leaves no file and an existing one untouched; a link is written through.
    /// </summary>
    /// <exception cref="InvalidRequestException">The name does not end in <c>.safetensors</c> (the kind follows the extension).</exception>
    /// <exception cref="IOException">The destination is a folder, a device or a pipe, or cannot be written.</exception>
    public void SaveLatents(string path)
    {
        RequireExtension(path, ".safetensors", "latents are written as safetensors");
        new SafetensorsWriter()
            .Add("latent", (ReadOnlySpan<float>)Latents, [.. Shape])
            .Add("labels", (ReadOnlySpan<long>)Labels.Select(l => (long)l).ToArray(), [Labels.Count])
            .SetMetadata("format", LatentsFormat)
            .SetMetadata("weights", _weightsName)
            .SetMetadata("seed", _request.Seed.ToString(CultureInfo.InvariantCulture))
            .SetMetadata("steps", _request.Steps.ToString(CultureInfo.InvariantCulture))
            .SetMetadata("sampler", Sampler.Name(_request.Sampler))
            .SetMetadata("eta", _request.Eta.ToString(CultureInfo.InvariantCulture))
            .SetMetadata("cfg_scale", _request.GuidanceScale.ToString(CultureInfo.InvariantCulture))
            .SetMetadata("cache", _request.Cache.Spec)
            .Save(path);
    }

    /// <summary>
    /// Writes the images as one PNG grid with a row per distinct label (in order of first appearance; a row shorter
    /// than the longest stays black), values [−1, 1] mapped to 0–255. Written atomically, like <see cref="SaveLatents"/>.
    /// </summary>
    /// <exception cref="BlockDanceException">The model is not pixel-space: its latents are not images; or the results are
    /// video clips (one grid of images does not show them).</exception>
    /// <exception cref="InvalidRequestException">The name does not end in <c>.png</c>.</exception>
    /// <exception cref="IOException">The destination is a folder, a device or a pipe, or cannot be written.</exception>
    public void SaveImageGrid(string path)
    {
        RequireExtension(path, ".png", "the image grid is written as PNG");
        if (!IsPixelSpace)
            throw new BlockDanceException($"cannot write '{path}': the model works in a latent space, so its results are latents, not images " +
                "(the checkpoint's metadata has no pixel_space=true); save them with SaveLatents and decode them with the model's VAE");
        if (Shape.Count != 4)
            throw new BlockDanceException($"cannot write '{path}' as an image grid: the results are clips of {Shape[1]} frames; " +
                "save them with SaveLatents (blockdance generate writes an animated GIF and a frame strip)");
        var grid = ComposeGrid(Latents, Labels, Shape[1], Shape[2], Shape[3]);
        Png.Write(path, grid.Pixels, grid.Width, grid.Height, PngColorType.Rgb);
    }

    /// <summary>The images as a grid: one row per distinct label, in order of first appearance.</summary>
    internal static RgbImage ComposeGrid(float[] images, IReadOnlyList<int> labels, int channels, int height, int width)
    {
        var rows = labels.Distinct().ToList();
        int columns = rows.Max(r => labels.Count(l => l == r));
        long item = (long)channels * height * width;
        var ordered = new float[rows.Count * columns * item];
        Array.Fill(ordered, -1f);   // missing cells stay black
        for (int r = 0; r < rows.Count; r++)
        {
            int col = 0;
            for (int i = 0; i < labels.Count; i++)
                if (labels[i] == rows[r])
                    Array.Copy(images, i * item, ordered, (r * columns + col++) * item, item);
        }
        return ImageGrid.Compose(ordered, channels, height, width, rows.Count);
    }

    /// <summary>The file kind follows the extension: a name with another one is refused rather than mislabelled.</summary>
    internal static void RequireExtension(string path, string extension, string what)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!path.EndsWith(extension, StringComparison.OrdinalIgnoreCase))
            throw new InvalidRequestException($"'{path}': {what}; give a name ending in {extension}", nameof(path));
    }
}
