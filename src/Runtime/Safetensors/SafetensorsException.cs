namespace BlockDance.Runtime.Safetensors;

/// <summary>
/// A safetensors file is malformed, truncated or unsupported. The message names the file, the tensor where one is
/// involved, and what is wrong with it, e.g.
/// <c>model.safetensors: tensor 'blocks.0.attn.qkv.weight': shape [2304, 768] × F32 = 7077888 bytes but data_offsets span 7077884 bytes</c>.
/// </summary>
/// <remarks>
/// A missing file is reported as <c>no such file: PATH</c> and a folder given as a file as
/// <c>PATH is a folder, not a file</c> (<see cref="Problem"/>: "no such file", "is a folder, not a file"), so that a
/// caller (the command line) can prefix the option that named the path. Since issue 11 this derives from
/// <see cref="BlockDanceException"/>, the base of every library error, no longer from <see cref="IOException"/>.
/// </remarks>
public sealed class SafetensorsException : BlockDanceException
{
    /// <param name="filePath">The file as the caller named it.</param>
    /// <param name="tensorName">The tensor the problem is about, or null when it is about the whole file.</param>
    /// <param name="problem">What is wrong, without the file and tensor prefix.</param>
    /// <param name="innerException">The underlying error (a JSON parse error, ...), if any.</param>
    public SafetensorsException(string filePath, string? tensorName, string problem, Exception? innerException = null)
        : base(Format(filePath, tensorName, problem), innerException)
    {
        FilePath = filePath;
        TensorName = tensorName;
        Problem = problem;
    }

    private SafetensorsException(string filePath, string problem, Exception? innerException, string message)
        : base(message, innerException)
    {
        FilePath = filePath;
        Problem = problem;
    }

    /// <summary>"no such file: PATH".</summary>
    internal static SafetensorsException NoSuchFile(string path, Exception? inner = null) =>
        new(path, "no such file", inner, $"no such file: {path}");

    /// <summary>"PATH is a folder, not a file".</summary>
    internal static SafetensorsException IsAFolder(string path) =>
        new(path, "is a folder, not a file", null, $"{path} is a folder, not a file");

    /// <summary>The file as the caller named it.</summary>
    public string FilePath { get; }

    /// <summary>The tensor the problem is about, or null when it is about the whole file.</summary>
    public string? TensorName { get; }

    /// <summary>What is wrong, without the file and tensor prefix.</summary>
    public string Problem { get; }

    private static string Format(string filePath, string? tensorName, string problem) =>
        tensorName is null
            ? $"{filePath}: {problem}"
            : $"{filePath}: tensor {SafetensorsFormat.Quote(tensorName)}: {problem}";
}
