using BlockDance.Runtime.IO;

namespace BlockDance.Cli;

/// <summary>
/// Input files named on the command line: a folder given as a file is a usage error (exit 2); a missing file is a
/// failure (exit 1); both messages name the option and the path.
/// </summary>
public static class Inputs
{
    /// <summary>Returns <paramref name="path"/> when it names a file to read.</summary>
    public static string Require(string path, string option)
    {
        if (FileKinds.Of(path) == FileKind.Directory)
            throw new UsageException($"{option}: '{path}' is a folder, not a file");
        return FileKinds.RequireFile(path, option);
    }
}

/// <summary>
/// Output files named on the command line, checked before any work so that a long run never ends in "cannot write".
/// The kind of file follows the extension (a wrong one is a usage error, exit 2, naming the option); the folder is
/// created; the destination must be writable and a regular file or a link to one (a device, a pipe or an
/// unwritable folder is a failure, exit 1). Files are written atomically (<see cref="AtomicFile"/>).
/// </summary>
public static class Outputs
{
    /// <summary>Checks <paramref name="path"/> for <paramref name="option"/>, whose files end in <paramref name="extension"/>
    /// and hold <paramref name="kind"/>; creates its folder and returns the path.</summary>
    public static string Prepare(string path, string option, string extension, string kind)
    {
        CheckName(path, option, extension, kind);
        CreateParent(path, option);
        AtomicFile.CheckWritable(path, option);
        return path;
    }

    /// <summary>The usage half of <see cref="Prepare"/>: not a folder, and the extension of the kind.</summary>
    public static string CheckName(string path, string option, string extension, string kind)
    {
        if (FileKinds.Of(path) == FileKind.Directory)
            throw new UsageException($"{option} '{path}' is a directory; give a file name");
        if (!path.EndsWith(extension, StringComparison.OrdinalIgnoreCase))
            throw new UsageException($"{option} '{path}': {kind} is written as {extension[1..]}; give a name ending in {extension}");
        return path;
    }

    /// <summary>Checks an output folder (<c>analyze --out</c>): not a file, created, writable.</summary>
    public static string PrepareFolder(string path, string option)
    {
        var kind = FileKinds.Of(path);
        if (kind is not (FileKind.Directory or FileKind.Missing))
            throw new UsageException($"{option} '{path}' is {FileKinds.Describe(kind)}; give a folder");
        try
        {
            Directory.CreateDirectory(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"{option} '{path}': cannot create the folder ({e.Message})", e);
        }
        AtomicFile.CheckWritable(Path.Combine(path, "probe"), option);
        return path;
    }

    private static void CreateParent(string path, string option)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is null || FileKinds.Of(dir) == FileKind.Directory)
            return;
        try
        {
            Directory.CreateDirectory(dir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"{option} '{path}': cannot create its folder '{dir}' ({e.Message})", e);
        }
    }
}
