using System.Buffers;
using BlockDance.Runtime.IO;

namespace BlockDance.Runtime.Safetensors;

/// <summary>
/// Writes a safetensors file tensor by tensor, never holding more than the piece being written, for checkpoints too
/// large to assemble in memory first. Made by <see cref="SafetensorsWriter.Create"/> from the full layout, so the header (and every offset)
/// is written up front; then each tensor's bytes are written in layout order, whole or in consecutive chunks.
/// </summary>
/// <remarks>
/// The file is written through <see cref="AtomicFile.Begin"/> (links written through, devices refused): the bytes go to
/// a temporary file beside the destination, which is renamed over the destination only when every tensor has been
/// written and <see cref="Complete"/> is called. Disposing earlier, or any failure, deletes the temporary file and leaves the destination as it was, so no
/// reader ever sees a half-written file. Not thread-safe.
/// </remarks>
internal sealed class SafetensorsStreamWriter : IDisposable
{
    /// <summary>Largest piece a <see cref="Tensor"/> is downloaded in.</summary>
    private const int TensorChunkBytes = 16 << 20;

    private readonly (string Name, DType DType, int[] Shape)[] _layout;
    private readonly long[] _byteLengths;
    private readonly AtomicFileWriter _file;
    private readonly Stream _stream;
    private int _index;          // the tensor being written
    private long _writtenOfCurrent;

    internal SafetensorsStreamWriter(
        string path, IReadOnlyList<(string Name, DType DType, int[] Shape)> layout, IEnumerable<KeyValuePair<string, string>> metadata)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(layout);
        _layout = layout
            .Select(e => (e.Name, e.DType, (int[])(e.Shape ?? throw new ArgumentException($"tensor {SafetensorsFormat.Quote(e.Name ?? "")}: shape is null")).Clone()))
            .ToArray();
        // Everything about the layout is validated here, before any file exists.
        byte[] header = SafetensorsFormat.BuildHeader(_layout, metadata, out _byteLengths, out long dataLength);

        Path = System.IO.Path.GetFullPath(path);
        // Reserves the space up front where the file system can, so a full disk fails now rather than at byte 3e9.
        _file = AtomicFile.Begin(Path, preallocationSize: header.Length + dataLength);
        _stream = _file.Stream;
        try
        {
            _stream.Write(header);
        }
        catch
        {
            Discard();
            throw;
        }
    }

    /// <summary>The destination (full path).</summary>
    public string Path { get; }

    /// <summary>Number of tensors completely written so far.</summary>
    public int TensorsWritten => _index;

    /// <summary>True once every tensor's bytes have been written (the file can be committed).</summary>
    public bool IsComplete => _index == _layout.Length;

    /// <summary>
    /// Appends <paramref name="data"/> to tensor <paramref name="name"/>, which must be the next unfinished tensor of
    /// the layout. A tensor may be written in several consecutive calls; a call never reaches into the next tensor.
    /// A tensor with no bytes is written with an empty span.
    /// </summary>
    /// <exception cref="InvalidOperationException">The name is not the next tensor, or the writer is finished.</exception>
    /// <exception cref="ArgumentException">The data is longer than what remains of the tensor (nothing is written).</exception>
    /// <exception cref="IOException">Writing failed: the file is discarded, and later calls throw
    /// <see cref="ObjectDisposedException"/>.</exception>
    public void Write(string name, ReadOnlySpan<byte> data)
    {
        CheckNext(name);
        long total = _byteLengths[_index];
        if (data.Length > total - _writtenOfCurrent)
            throw new ArgumentException(
                $"{Path}: tensor {SafetensorsFormat.Quote(name)}: {data.Length} more bytes exceed its {total} bytes ({_writtenOfCurrent} already written)",
                nameof(data));
        try
        {
            _stream.Write(data);
        }
        catch
        {
            Discard(); // the file's state is unknown now; nothing more may be written to it
            throw;
        }
        _writtenOfCurrent += data.Length;
        if (_writtenOfCurrent == total)
        {
            _index++;
            _writtenOfCurrent = 0;
        }
    }

    /// <summary>
    /// Writes tensor <paramref name="name"/> from <paramref name="tensor"/> (any device; downloaded in pieces of at most
    /// 16 MiB), which must have the dtype and shape of the layout. If the download or the write fails, the file is
    /// discarded (part of the tensor may be in it) and later calls throw <see cref="ObjectDisposedException"/>.
    /// </summary>
    public void Write(string name, Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        CheckNext(name);
        var (_, type, shape) = _layout[_index];
        if (tensor.DType != type || !tensor.HasShape(shape))
            throw new ArgumentException(
                $"{Path}: tensor {SafetensorsFormat.Quote(name)} is declared {type.SafetensorsName()} {ShapeUtil.Format(shape)} but got {tensor}",
                nameof(tensor));
        if (_writtenOfCurrent != 0)
            throw new InvalidOperationException(
                $"{Path}: tensor {SafetensorsFormat.Quote(name)} is partly written; a Tensor can only be written whole");

        int elementSize = type.SizeOf();
        long perChunk = Math.Max(1, TensorChunkBytes / elementSize);
        byte[] buffer = ArrayPool<byte>.Shared.Rent((int)(Math.Min(perChunk, Math.Max(1, tensor.Count)) * elementSize));
        try
        {
            if (tensor.Count == 0)
                Write(name, ReadOnlySpan<byte>.Empty);
            for (long start = 0; start < tensor.Count; start += perChunk)
            {
                int count = (int)Math.Min(perChunk, tensor.Count - start);
                var piece = buffer.AsSpan(0, count * elementSize);
                tensor.Device.Download(tensor.View(start, count), piece);
                Write(name, piece);
            }
        }
        catch when (_file.IsOpen)
        {
            Discard(); // part of the tensor may be in the file: the file cannot be completed any more
            throw;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Flushes the file to disk and renames it into place.</summary>
    /// <exception cref="InvalidOperationException">Not every tensor has been written, or the writer is finished.</exception>
    public void Complete()
    {
        ThrowIfFinished();
        if (!IsComplete)
            throw new InvalidOperationException(
                $"{Path}: {_index} of {_layout.Length} tensors are written; tensor {SafetensorsFormat.Quote(_layout[_index].Name)} is next ({_writtenOfCurrent} of {_byteLengths[_index]} bytes written)");
        _file.Commit();   // on failure it deletes the temporary file; the writer is finished either way
    }

    /// <summary>
    /// Deletes the temporary file unless <see cref="Complete"/> committed it, leaving the destination untouched: a
    /// <c>using</c> block left by an exception never publishes a file, even one whose bytes were all written.
    /// </summary>
    public void Dispose() => _file.Dispose();

    private void CheckNext(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        ThrowIfFinished();
        if (_index == _layout.Length)
            throw new InvalidOperationException(
                $"{Path}: all {_layout.Length} tensors are written; tensor {SafetensorsFormat.Quote(name)} is not expected");
        string expected = _layout[_index].Name;
        if (name != expected)
            throw new InvalidOperationException(_writtenOfCurrent == 0
                ? $"{Path}: expected tensor {SafetensorsFormat.Quote(expected)} next (tensors are written in layout order), got {SafetensorsFormat.Quote(name)}"
                : $"{Path}: tensor {SafetensorsFormat.Quote(expected)} is partly written ({_writtenOfCurrent} of {_byteLengths[_index]} bytes); got {SafetensorsFormat.Quote(name)}");
    }

    private void ThrowIfFinished()
    {
        if (_file.IsDiscarded)
            throw new ObjectDisposedException(nameof(SafetensorsStreamWriter),
                $"{Path}: the writer was discarded (disposed before the last tensor, or a write failed); nothing was committed");
        if (_file.IsCommitted)
            throw new InvalidOperationException($"{Path}: the file is already complete");
    }

    private void Discard() => _file.Dispose();
}
