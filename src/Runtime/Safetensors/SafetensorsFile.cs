using System.Buffers.Binary;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.IO.MemoryMappedFiles;
using System.Numerics;
using System.Runtime.InteropServices;

namespace BlockDance.Runtime.Safetensors;

/// <summary>
/// A safetensors file mapped into memory, read-only. <see cref="Open"/> validates the whole header (see
/// <see cref="SafetensorsException"/> for what a bad file reports) but touches no tensor data: the spans, addresses and
/// CPU tensors handed out point into the mapping, so the operating system pages the data in when it is first read, and
/// nothing is copied until a converting reader (<see cref="ReadFloat32"/>, <see cref="ReadInt64"/>) is asked for.
/// </summary>
/// <remarks>
/// <para>What a file must satisfy (anything else is a <see cref="SafetensorsException"/> naming the file, the tensor and
/// the problem; never an unchecked crash, a hang or a huge allocation):</para>
/// <list type="bullet">
/// <item>at least 8 bytes; the header length at most <see cref="SafetensorsFormat.MaxHeaderLength"/> (100 MB, as in the
/// reference implementation) and within the file;</item>
/// <item>the header is valid UTF-8 holding one JSON object (surrounding whitespace, such as the writers' padding, is
/// fine), with no key repeated at any level;</item>
/// <item><c>__metadata__</c>, if present, maps strings to strings (<c>null</c> reads as empty);</item>
/// <item>every other entry has <c>dtype</c> (a string naming one of F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL),
/// <c>shape</c> (integers in [0, 2^31)) and <c>data_offsets</c> ([begin, end], begin ≤ end); other keys in an entry
/// are ignored, as the reference ignores them;</item>
/// <item>elements × element size is computed with overflow checks and equals end − begin;</item>
/// <item>sorted by offset, the tensors tile the data section exactly: no holes, no overlaps, no trailing bytes after the
/// last tensor (the reference's rule). The header order need not be the data order.</item>
/// </list>
/// <para>Everything handed out that points into the mapping is valid only until <see cref="Dispose"/>; after it, every member
/// except <see cref="Path"/> throws <see cref="ObjectDisposedException"/>, and so do the CPU tensors handed out. The
/// mapping itself is reference-counted: a model whose weights are views of it holds a lease, so disposing the file
/// before the model unmaps nothing until the model is disposed too. Reading from several threads at once is safe;
/// disposing while another thread reads is not. The file is opened with <see cref="FileShare.Read"/> |
/// <see cref="FileShare.Delete"/>: it may be replaced by rename (the mapping keeps the old contents), but a process that
/// truncates it in place while it is mapped makes later reads fault, as with any memory-mapped file.
/// Tensor data is little-endian and not necessarily aligned to its element size (that depends on the writer).</para>
/// </remarks>
public sealed class SafetensorsFile : IDisposable
{
    private readonly Lifetime _mapping;    // owns the stream, the map and the pinned view; leases keep it alive
    private readonly Lease _ownLease;      // checks the tensors handed out by AsCpuTensor: gone at Dispose
    private readonly nint _base; // the first byte of the file in the mapping
    private readonly long _length;
    private readonly long _headerLength;
    private readonly long _dataOffset;
    private readonly Dictionary<string, SafetensorsTensorInfo> _byName;
    private readonly IReadOnlyList<SafetensorsTensorInfo> _tensors;
    private readonly IReadOnlyDictionary<string, string> _metadata;
    private int _disposed;

    private SafetensorsFile(string path, FileStream stream, MemoryMappedFile map, MemoryMappedViewAccessor view, nint @base, long length)
    {
        Path = path;
        _base = @base;
        _length = length;

        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(Bytes(0, 8));
        // Checked before the header is touched: a hostile length (2^60) must fail here, without allocating anything.
        if (headerLength > SafetensorsFormat.MaxHeaderLength)
            throw new SafetensorsException(path, null,
                $"header length is {headerLength} bytes, more than the {SafetensorsFormat.MaxHeaderLength}-byte limit (the file is corrupt or not a safetensors file)");
        if (headerLength > (ulong)(length - 8))
            throw new SafetensorsException(path, null,
                $"header length is {headerLength} bytes but the file has only {length - 8} bytes after the 8-byte length (the file is truncated or not a safetensors file)");
        _headerLength = (long)headerLength;
        _dataOffset = 8 + _headerLength;

        var header = Bytes(8, (int)_headerLength); // inside the file, as just checked
        var (tensors, metadata) = SafetensorsHeaderParser.Parse(path, header, _dataOffset, length - _dataOffset);
        _tensors = tensors.AsReadOnly();
        _metadata = metadata;
        _byName = new Dictionary<string, SafetensorsTensorInfo>(tensors.Count, StringComparer.Ordinal);
        foreach (var t in tensors)
            _byName.Add(t.Name, t);

        // Last, once nothing can throw: from here on the mapping is released by its lifetime (Dispose, the last lease,
        // or the finaliser), never by Open's clean-up.
        _mapping = new Lifetime($"the memory-mapped file {path}", () =>
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
            view.Dispose();
            map.Dispose();
            stream.Dispose();
        });
        _ownLease = _mapping.Acquire($"the SafetensorsFile {path}");
    }

    /// <summary>Maps <paramref name="path"/> read-only and validates its header.</summary>
    /// <exception cref="SafetensorsException">The file is not a valid safetensors file; the message says why.</exception>
    /// <exception cref="SafetensorsException">Also when the file is missing ("no such file: PATH"), is a folder ("PATH is a
    /// folder, not a file") or cannot be read (the message names the path and the reason).</exception>
    public static unsafe SafetensorsFile Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var stream = OpenStream(path);
        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        byte* pointer = null;
        try
        {
            long length = stream.Length;
            // Checked before mapping: an empty file cannot be mapped at all, and any file shorter than the length
            // prefix is not a safetensors file.
            if (length < 8)
                throw new SafetensorsException(path, null,
                    $"file has {length} bytes, fewer than the 8-byte header length that starts every safetensors file");
            map = MemoryMappedFile.CreateFromFile(stream, mapName: null, capacity: 0, MemoryMappedFileAccess.Read,
                HandleInheritability.None, leaveOpen: true);
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            // SAFETY: AcquirePointer pins the view (adds a reference to its handle) until the matching ReleasePointer
            // in Dispose, so the address stays valid for the object's lifetime. The view starts at file offset 0;
            // PointerOffset is the distance from the page-aligned mapping start to that offset.
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            return new SafetensorsFile(path, stream, map, view, (nint)(pointer + view.PointerOffset), length);
        }
        catch
        {
            if (pointer != null)
                view!.SafeMemoryMappedViewHandle.ReleasePointer();
            view?.Dispose();
            map?.Dispose();
            stream.Dispose();
            throw;
        }
    }

    /// <summary>Opens the file for reading, turning the ways it can be absent into messages that name the path.</summary>
    private static FileStream OpenStream(string path)
    {
        // Checked first: opening a folder fails on Linux with "Access to the path is denied", which misleads.
        if (Directory.Exists(path))
            throw SafetensorsException.IsAFolder(path);
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, bufferSize: 1);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw SafetensorsException.NoSuchFile(path, e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SafetensorsException(path, null, $"cannot be read: {e.Message}", e);
        }
    }

    /// <summary>The path the file was opened with (used in every error message).</summary>
    public string Path { get; }

    /// <summary>Length of the JSON header in bytes (including its padding).</summary>
    public long HeaderLength { get { ThrowIfDisposed(); return _headerLength; } }

    /// <summary>Where the data section starts, from the start of the file (8 + <see cref="HeaderLength"/>).</summary>
    public long DataOffset { get { ThrowIfDisposed(); return _dataOffset; } }

    /// <summary>Length of the file in bytes.</summary>
    public long Length { get { ThrowIfDisposed(); return _length; } }

    /// <summary>The <c>__metadata__</c> strings, in file order; empty when the file has none.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get { ThrowIfDisposed(); return _metadata; } }

    /// <summary>The tensors in header order (the order of the JSON keys, which need not be the order of the data).</summary>
    public IReadOnlyList<SafetensorsTensorInfo> Tensors { get { ThrowIfDisposed(); return _tensors; } }

    /// <summary>True when the file holds a tensor called <paramref name="name"/>.</summary>
    public bool Contains(string name)
    {
        ThrowIfDisposed();
        return _byName.ContainsKey(name);
    }

    /// <summary>Looks a tensor up by name; false when the file has none of that name.</summary>
    public bool TryGet(string name, [MaybeNullWhen(false)] out SafetensorsTensorInfo info)
    {
        ThrowIfDisposed();
        return _byName.TryGetValue(name, out info);
    }

    /// <summary>The tensor called <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">The file has no such tensor.</exception>
    public SafetensorsTensorInfo this[string name]
    {
        get
        {
            ThrowIfDisposed();
            return _byName.TryGetValue(name, out var info)
                ? info
                : throw new KeyNotFoundException(
                    $"{Path}: no tensor {SafetensorsFormat.Quote(name)} (the file has {_tensors.Count} tensors)");
        }
    }

    /// <summary>The tensor's bytes, a view of the mapping (valid until <see cref="Dispose"/>).</summary>
    /// <exception cref="SafetensorsException">The tensor is 2 GiB or larger (a span cannot hold it); use <see cref="GetAddress"/>.</exception>
    public ReadOnlySpan<byte> GetBytes(string name)
    {
        var info = this[name];
        if (info.ByteLength > int.MaxValue)
            throw new SafetensorsException(Path, name,
                $"{info.ByteLength} bytes do not fit in a span; use GetAddress or AsCpuTensor");
        return Bytes(info.FileOffset, (int)info.ByteLength); // inside the file: the header was validated
    }

    /// <summary>The address of the tensor's first byte in the mapping (valid until <see cref="Dispose"/>).</summary>
    public nint GetAddress(string name) => _base + (nint)this[name].FileOffset;

    /// <summary>
    /// The tensor as a CPU <see cref="Tensor"/> that borrows the mapped bytes: no copy, nothing to free. Valid while this
    /// file is open; the mapping is read-only, so writing through the tensor faults.
    /// </summary>
    public Tensor AsCpuTensor(string name) => AsCpuTensor(name, _ownLease);

    /// <summary>
    /// A lease on the mapping: the mapped bytes stay valid until both this file and the lease are disposed. A model whose
    /// weights are views of the file holds one, so disposing the checkpoint first cannot unmap them.
    /// </summary>
    /// <param name="holder">Who holds the lease, named when a tensor is used after it ended ("the DitModel loaded from x").</param>
    internal Lease AcquireLease(string holder)
    {
        ThrowIfDisposed();
        return _mapping.Acquire(holder);
    }

    /// <summary>The tensor as a CPU tensor borrowing the mapped bytes, valid (checked) while <paramref name="lease"/> is held.</summary>
    internal Tensor AsCpuTensor(string name, Lease lease)
    {
        var info = this[name];
        return Tensor.Borrow(CpuDevice.Instance, info.DType, _base + (nint)info.FileOffset, lease, info.ShapeToArray());
    }

    /// <summary>
    /// The tensor's values as a new float array. F32, F16, BF16, I16, I8, U8 and BOOL (0 or 1) convert exactly; F64, I32
    /// and I64 round to the nearest float (ties to even), as a C# cast does.
    /// </summary>
    public float[] ReadFloat32(string name)
    {
        var info = this[name];
        var result = new float[CheckedArrayLength(info)];
        var bytes = GetBytes(name);
        switch (info.DType)
        {
            case DType.F32:
                bytes.CopyTo(MemoryMarshal.AsBytes(result.AsSpan()));
                break;
            case DType.F16:
                NumericConversions.HalfToSingle(MemoryMarshal.Cast<byte, Half>(bytes), result);
                break;
            case DType.BF16:
                NumericConversions.BFloat16ToSingle(MemoryMarshal.Cast<byte, ushort>(bytes), result);
                break;
            case DType.F64:
                Widen(MemoryMarshal.Cast<byte, double>(bytes), result.AsSpan());
                break;
            default:
                if (!TryWidenInteger(info.DType, bytes, result.AsSpan()))
                    throw new SafetensorsException(Path, name, $"{info.DType.SafetensorsName()} cannot be read as float32");
                break;
        }
        return result;
    }

    /// <summary>The values of an integer tensor (I64, I32, I16, I8, U8, BOOL as 0 or 1) as a new long array (exact).</summary>
    /// <exception cref="SafetensorsException">The tensor holds floating-point values.</exception>
    public long[] ReadInt64(string name)
    {
        var info = this[name];
        if (info.DType.IsFloat())
            throw new SafetensorsException(Path, name,
                $"is {info.DType.SafetensorsName()}; ReadInt64 reads integer tensors (I64, I32, I16, I8, U8, BOOL)");
        var result = new long[CheckedArrayLength(info)];
        var bytes = GetBytes(name);
        if (!TryWidenInteger(info.DType, bytes, result.AsSpan()))
            throw new SafetensorsException(Path, name, $"{info.DType.SafetensorsName()} cannot be read as int64");
        return result;
    }

    /// <summary>
    /// Closes the file; the mapping goes now, or when the last lease on it ends. Spans, addresses and tensors handed out
    /// by this file become invalid (its tensors then throw <see cref="ObjectDisposedException"/>). Idempotent.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _ownLease.Dispose();
        _mapping.Dispose();   // unmaps now, or when the last lease (a model's) ends
    }

    /// <summary>A span over <c>[offset, offset + length)</c> of the file; the caller has checked that it lies inside.</summary>
    private unsafe ReadOnlySpan<byte> Bytes(long offset, int length)
    {
        Debug.Assert(offset >= 0 && offset + length <= _length && Volatile.Read(ref _disposed) == 0);
        // SAFETY: _base addresses the whole file, mapped read-only and pinned until Dispose; the range is inside the
        // file (checked by the callers against the validated header), and every public caller checks for disposal first.
        return new ReadOnlySpan<byte>((byte*)_base + offset, length);
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    private int CheckedArrayLength(SafetensorsTensorInfo info) =>
        info.ElementCount <= Array.MaxLength
            ? (int)info.ElementCount
            : throw new SafetensorsException(Path, info.Name,
                $"{info.ElementCount} elements do not fit in an array (at most {Array.MaxLength})");

    /// <summary>The integer and BOOL dtypes, converted element by element as a C# cast does; false for other dtypes.</summary>
    private static bool TryWidenInteger<T>(DType type, ReadOnlySpan<byte> bytes, Span<T> result) where T : INumberBase<T>
    {
        switch (type)
        {
            case DType.I64: Widen(MemoryMarshal.Cast<byte, long>(bytes), result); return true;
            case DType.I32: Widen(MemoryMarshal.Cast<byte, int>(bytes), result); return true;
            case DType.I16: Widen(MemoryMarshal.Cast<byte, short>(bytes), result); return true;
            case DType.I8: Widen(MemoryMarshal.Cast<byte, sbyte>(bytes), result); return true;
            case DType.U8: Widen(bytes, result); return true;
            case DType.Bool: ReadBools(bytes, result); return true;
            default: return false;
        }
    }

    /// <summary>Converts element by element as a C# cast does (exact widening, or rounding to nearest even).</summary>
    private static void Widen<TFrom, TTo>(ReadOnlySpan<TFrom> source, Span<TTo> destination)
        where TFrom : INumberBase<TFrom>
        where TTo : INumberBase<TTo>
    {
        for (int i = 0; i < source.Length; i++)
            destination[i] = TTo.CreateTruncating(source[i]);
    }

    /// <summary>BOOL bytes as 0 or 1 (any non-zero byte counts as true, as numpy and PyTorch read it).</summary>
    private static void ReadBools<T>(ReadOnlySpan<byte> source, Span<T> destination) where T : INumberBase<T>
    {
        for (int i = 0; i < source.Length; i++)
            destination[i] = source[i] != 0 ? T.One : T.Zero;
    }
}
