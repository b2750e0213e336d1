using System.Text;

namespace BlockDance.Runtime.IO;

/// <summary>
/// The one way the project writes an output file, so that readers see either the old file (or none) or the complete
/// new one, never a half-written one. The bytes go to a temporary file beside the destination
/// (<c>NAME.&lt;random&gt;.tmp</c>, same folder, so the rename stays on one file system), which is flushed to disk and
/// renamed over the destination only when it is complete. If writing, flushing or renaming fails, the temporary file
/// is deleted, the destination is left as it was, and the exception propagates.
/// </summary>
/// <remarks>
/// The destination rules: a symbolic link is written through (its final target gets the new content, the link stays
/// a link; the target keeps its permission bits); a folder, a device (<c>/dev/null</c>, <c>/dev/full</c>), a named pipe
/// or a socket is refused with an <see cref="IOException"/> and never replaced. <see cref="CheckWritable"/> applies
/// the same rules and proves the folder writable before a long computation starts.
/// </remarks>
internal static class AtomicFile
{
    /// <summary>Writes the file through <paramref name="write"/>, which receives a writable stream.</summary>
    /// <exception cref="ArgumentException">The path is empty.</exception>
    /// <exception cref="IOException">The destination is not a regular file, or writing failed.</exception>
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        using var file = Begin(path);
        write(file.Stream);
        file.Commit();
    }

    /// <summary>Writes <paramref name="bytes"/> as the whole file.</summary>
    public static void WriteAllBytes(string path, byte[] bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        Write(path, stream => stream.Write(bytes));
    }

    /// <summary>
    /// Writes text through <paramref name="write"/>: UTF-8 without a byte-order mark, <c>\n</c> line ends on every
    /// platform (so generated CSV files are byte-identical everywhere).
    /// </summary>
    public static void WriteText(string path, Action<TextWriter> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        Write(path, stream =>
        {
            using var writer = new StreamWriter(stream, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false), bufferSize: 1 << 16, leaveOpen: true)
            {
                NewLine = "\n",
            };
            write(writer);
            writer.Flush();
        });
    }

    /// <summary>
    /// Starts a file that appears at <paramref name="path"/> only when <see cref="AtomicFileWriter.Commit"/> is called;
    /// disposing the writer before that deletes it. For writers that stream large files piece by piece.
    /// </summary>
    /// <param name="path">The destination (see the class remarks for links, devices and folders).</param>
    /// <param name="preallocationSize">Bytes to reserve up front where the file system can (0: none), so a full disk
    /// fails at once rather than near the end.</param>
    /// <exception cref="IOException">The destination is not a regular file, or the temporary file cannot be created.</exception>
    public static AtomicFileWriter Begin(string path, long preallocationSize = 0) =>
        new(path, ResolveDestination(path), preallocationSize);

    /// <summary>
    /// The file a write to <paramref name="path"/> replaces: the path itself, or for a symbolic link its final target.
    /// </summary>
    /// <exception cref="IOException">The path (or its target) is a folder, a device, a named pipe or a socket.</exception>
    public static string ResolveDestination(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string full = Path.GetFullPath(path);
        if (FileKinds.Of(full, followLinks: false) == FileKind.SymbolicLink)
            full = File.ResolveLinkTarget(full, returnFinalTarget: true)?.FullName ?? full;
        var kind = FileKinds.Of(full, followLinks: false);
        return kind switch
        {
            FileKind.Regular or FileKind.Missing => full,
            FileKind.Directory => throw new IOException($"'{path}' is a folder, not a file"),
            _ => throw new IOException(
                $"'{path}'{(full == Path.GetFullPath(path) ? "" : $" (a link to '{full}')")} is {FileKinds.Describe(kind)}, not a regular file; " +
                "outputs are written to a temporary file and renamed into place, which would replace it, so it is refused"),
        };
    }

    /// <summary>
    /// Checks, before any long work, that <paramref name="path"/> can be written: the destination rules hold, its
    /// folder exists, and a temporary file can be created there (it is deleted again). Running as root, where
    /// permission bits do not stop writes, this still catches read-only file systems and folders that cannot exist.
    /// </summary>
    /// <param name="path">The destination.</param>
    /// <param name="what">Prefix of the messages, e.g. the command-line option (<c>--out</c>); null for none.</param>
    /// <returns>The file that will be replaced (the final target of a link).</returns>
    /// <exception cref="IOException">The destination cannot be written; the message says why.</exception>
    public static string CheckWritable(string path, string? what = null)
    {
        string prefix = what is null ? "" : what + ": ";
        string target;
        try
        {
            target = ResolveDestination(path);
        }
        catch (IOException e)
        {
            throw new IOException(prefix + e.Message, e);
        }
        string folder = Path.GetDirectoryName(target) ?? throw new IOException($"{prefix}'{path}' names a root folder, not a file");
        var folderKind = FileKinds.Of(folder);
        if (folderKind != FileKind.Directory)
            throw new IOException(folderKind == FileKind.Missing
                ? $"{prefix}cannot write '{path}': the folder '{folder}' does not exist"
                : $"{prefix}cannot write '{path}': '{folder}' is {FileKinds.Describe(folderKind)}, not a folder");
        string probe = TemporaryName(target);
        try
        {
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1))
            {
            }
            File.Delete(probe);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new IOException($"{prefix}cannot write '{path}': no permission to create files in '{folder}'", e);
        }
        catch (IOException e)
        {
            throw new IOException($"{prefix}cannot write '{path}': creating a file in '{folder}' failed ({e.Message})", e);
        }
        return target;
    }

    internal static string TemporaryName(string target) =>
        Path.Combine(Path.GetDirectoryName(target)!, $"{Path.GetFileName(target)}.{Guid.NewGuid():N}.tmp");
}

/// <summary>
/// A file being written by <see cref="AtomicFile.Begin"/>: write to <see cref="Stream"/>, then <see cref="Commit"/>
/// renames it into place. <see cref="Dispose"/> without a commit (a <c>using</c> block left by an exception) deletes the
/// temporary file and leaves the destination untouched. Not thread-safe.
/// </summary>
internal sealed class AtomicFileWriter : IDisposable
{
    private readonly string _tempPath;
    private readonly FileStream _stream;
    private State _state;

    private enum State { Writing, Committed, Discarded }

    internal AtomicFileWriter(string path, string target, long preallocationSize)
    {
        Path = path;
        TargetPath = target;
        _tempPath = AtomicFile.TemporaryName(target);
        _stream = new FileStream(_tempPath, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            Share = FileShare.None,
            BufferSize = 1 << 16,
            PreallocationSize = preallocationSize,
        });
    }

    /// <summary>The destination as given.</summary>
    public string Path { get; }

    /// <summary>The file that is replaced: the full destination path, or the final target of a link.</summary>
    public string TargetPath { get; }

    /// <summary>True until the file is committed or discarded.</summary>
    public bool IsOpen => _state == State.Writing;

    /// <summary>True once <see cref="Commit"/> renamed the file into place.</summary>
    public bool IsCommitted => _state == State.Committed;

    /// <summary>True once the file was discarded (disposed before a commit, or a commit failed): nothing was published.</summary>
    public bool IsDiscarded => _state == State.Discarded;

    /// <summary>Where the bytes go (the temporary file).</summary>
    /// <exception cref="ObjectDisposedException">The file was committed or discarded.</exception>
    public Stream Stream => _state == State.Writing ? _stream : throw new ObjectDisposedException(nameof(AtomicFileWriter), $"{Path}: the file is already {_state.ToString().ToLowerInvariant()}");

    /// <summary>Flushes the file to disk and renames it over the destination. On failure nothing is left behind.</summary>
    /// <exception cref="InvalidOperationException">The file was already committed or discarded.</exception>
    public void Commit()
    {
        if (_state != State.Writing)
            throw new InvalidOperationException($"{Path}: the file is already {_state.ToString().ToLowerInvariant()}");
        try
        {
            _stream.Flush(flushToDisk: true);
            _stream.Dispose();
            if (!OperatingSystem.IsWindows() && File.Exists(TargetPath))
                File.SetUnixFileMode(_tempPath, File.GetUnixFileMode(TargetPath));   // a replaced file keeps its permissions
            File.Move(_tempPath, TargetPath, overwrite: true);
            _state = State.Committed;
        }
        catch
        {
            Discard();
            throw;
        }
    }

    /// <summary>Deletes the temporary file unless <see cref="Commit"/> published it.</summary>
    public void Dispose()
    {
        if (_state == State.Writing)
            Discard();
    }

    private void Discard()
    {
        _state = State.Discarded;
        try
        {
            _stream.Dispose(); // may try to flush buffered bytes and fail again (a full disk); the file goes anyway
        }
        catch (IOException)
        {
        }
        try
        {
            File.Delete(_tempPath);
        }
        catch (IOException)
        {
            // Nothing more can be done; the destination is untouched either way.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
