namespace BlockDance.Cli;

/// <summary>
/// The small class-conditional DiT the project trains and ships (models/README.md): the default model of
/// <c>generate</c>. Found through <c>$BLOCKDANCE_MODEL</c>, else <c>models/dit-shapes-32.safetensors</c> in the nearest
/// parent folder of the application (the repository when run through ./blockdance).
/// </summary>
public static class BundledModel
{
    public const string RelativePath = "models/dit-shapes-32.safetensors";

    public static string? Find()
    {
        if (Environment.GetEnvironmentVariable("BLOCKDANCE_MODEL") is { Length: > 0 } env)
            return env;
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, RelativePath);
            if (File.Exists(candidate))
                return candidate;
        }
        string cwd = Path.GetFullPath(RelativePath);
        return File.Exists(cwd) ? cwd : null;
    }

    public static string Require() => Find() ?? throw new UsageException(
        $"no --weights given and the bundled model ({RelativePath}) was not found; pass --weights FILE or set BLOCKDANCE_MODEL");
}
