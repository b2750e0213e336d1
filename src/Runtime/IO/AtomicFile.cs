using System.Text;

namespace BlockDance.Runtime.IO;

/// <summary>
/// Writes a file so that readers see either the old file (or none) or the complete new one, never a half-written one:
/// the bytes go to a temporary file beside the destination (<c>NAME.&lt;random&gt;.tmp</c>, same directory, so the
/// rename stays on one file system), which is flushed to disk and renamed over the destination only when the writer
/// returned normally. If the writer throws, or flushing or renaming fails, the temporary file is deleted, the
/// destination is left as it was, and the exception propagates.
/// </summary>
internal static class AtomicFile
{
    /// <summary>Writes the file through <paramref name="write"/>, which receives a writable stream.</summary>
    /// <exception cref="ArgumentException">The path is empty.</exception>
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(write);
        string fullPath = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(fullPath)
            ?? throw new ArgumentException($"'{path}' names a root directory, not a file", nameof(path));
        string tempPath = Path.Combine(directory, $"{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        var stream = new FileStream(tempPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1 << 16);
        try
        {
            write(stream);
            stream.Flush(flushToDisk: true);
            stream.Dispose();
            File.Move(tempPath, fullPath, overwrite: true);
        }
        catch
        {
            Discard(stream, tempPath);
            throw;
        }
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

    private static void Discard(FileStream stream, string tempPath)
    {
        try
        {
            stream.Dispose(); // may try to flush buffered bytes and fail again (a full disk); the file goes anyway
        }
        catch (IOException)
        {
        }
        try
        {
            File.Delete(tempPath);
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
