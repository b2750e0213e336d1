namespace BlockDance.Cli;

/// <summary>
/// The small class-conditional DiT the project trains and ships (models/README.md): the default model of
/// <c>generate</c>. Found through <c>$BLOCKDANCE_MODEL</c>, else <c>models/dit-shapes-32.safetensors</c> in the nearest
/// parent folder of the application (the repository when run through ./blockdance).
/// </summary>
public static class BundledModel
{
    public const string RelativePath = "models/dit-shapes-32.safetensors";

    /// <summary>The bundled models by <c>--model</c> name: <c>shapes</c> (images, the default) and <c>shapes-video</c> (a Latte).</summary>
    public static IReadOnlyDictionary<string, string> Names { get; } = new Dictionary<string, string>
    {
        ["shapes"] = RelativePath,
        ["shapes-video"] = "models/latte-shapes-video-32.safetensors",
    };

    /// <summary>The file of the bundled model <paramref name="name"/>; a clear error when the name is unknown or the file is missing.</summary>
    public static string Require(string name)
    {
        if (!Names.TryGetValue(name, out var relative))
            throw new UsageException($"--model '{name}': the bundled models are {string.Join(", ", Names.Keys)}");
        if (name == "shapes")
            return Require();
        return Find(relative) ?? throw new UsageException(
            $"the bundled model '{name}' ({relative}) was not found: it is trained by tools/latte_train.py (see its docstring) and not shipped yet; pass --weights FILE");
    }

    public static string? Find()
    {
        if (Environment.GetEnvironmentVariable("BLOCKDANCE_MODEL") is { Length: > 0 } env)
            return env;
        return Find(RelativePath);
    }

    private static string? Find(string relativePath)
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, relativePath);
            if (File.Exists(candidate))
                return candidate;
        }
        string cwd = Path.GetFullPath(relativePath);
        return File.Exists(cwd) ? cwd : null;
    }

    public static string Require() => Find() ?? throw new UsageException(
        $"no --weights given and the bundled model ({RelativePath}) was not found; pass --weights FILE or set BLOCKDANCE_MODEL");
}
