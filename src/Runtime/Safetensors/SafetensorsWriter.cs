using System.Collections.ObjectModel;
using System.Runtime.InteropServices;

namespace BlockDance.Runtime.Safetensors;

/// <summary>
/// Builds a safetensors file in memory and saves it atomically. Tensors are copied when added, laid out back to back in
/// the order they were added, and the header lists them in that order after the metadata, so the same calls always
/// produce the same bytes. The header is serialized as the reference implementation serializes it (compact JSON,
/// padded with spaces to a multiple of 8); unlike the reference, which sorts tensors by dtype and name, the order is
/// the caller's.
/// Shapes are always explicit: <c>[]</c> is a scalar, <c>[n]</c> a vector. For checkpoints too large to hold in memory,
/// stream them with <see cref="Create"/>.
/// </summary>
/// <example><code>
/// new SafetensorsWriter()
///     .SetMetadata("format", "pt")
///     .Add("w", weights, [4, 8])        // float[] → F32, shape [4, 8]
///     .Add("steps", [50L], [])          // I64 scalar
///     .Save("model.safetensors");
/// </code></example>
public sealed class SafetensorsWriter
{
    private readonly List<(string Name, DType DType, int[] Shape)> _layout = [];
    private readonly List<byte[]> _data = [];
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly OrderedDictionary<string, string> _metadata = new(StringComparer.Ordinal);

    /// <summary>The metadata set so far, in insertion order.</summary>
    public IReadOnlyDictionary<string, string> Metadata => new ReadOnlyDictionary<string, string>(_metadata);

    /// <summary>Names of the tensors added so far, in order.</summary>
    public IReadOnlyList<string> TensorNames => _layout.Select(e => e.Name).ToList();

    /// <summary>Sets a <c>__metadata__</c> entry (replacing the value, in place, if the key exists).</summary>
    public SafetensorsWriter SetMetadata(string key, string value)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        _metadata[key] = value;
        return this;
    }

    /// <summary>Adds a tensor from its raw little-endian bytes (copied), which must be exactly shape × dtype size.</summary>
    /// <exception cref="ArgumentException">The name is taken or reserved, a dimension is negative, or the byte count is wrong.</exception>
    public SafetensorsWriter Add(string name, DType type, int[] shape, ReadOnlySpan<byte> data)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(shape);
        if (name == SafetensorsFormat.MetadataKey)
            throw new ArgumentException($"'{SafetensorsFormat.MetadataKey}' is reserved for metadata and cannot name a tensor", nameof(name));
        if (_names.Contains(name))
            throw new ArgumentException($"a tensor named {SafetensorsFormat.Quote(name)} was already added", nameof(name));
        long bytes = SafetensorsFormat.ByteLength(name, type, shape);
        if (bytes != data.Length)
            throw new ArgumentException(
                $"tensor {SafetensorsFormat.Quote(name)}: shape {ShapeUtil.Format(shape)} × {type.SafetensorsName()} = {bytes} bytes but {data.Length} bytes were given",
                nameof(data));
        _names.Add(name);
        _layout.Add((name, type, (int[])shape.Clone()));
        _data.Add(data.ToArray());
        return this;
    }

    /// <summary>Adds an F32 tensor.</summary>
    public SafetensorsWriter Add(string name, ReadOnlySpan<float> data, int[] shape) => AddValues(name, DType.F32, data, shape);

    /// <summary>Adds an F64 tensor.</summary>
    public SafetensorsWriter Add(string name, ReadOnlySpan<double> data, int[] shape) => AddValues(name, DType.F64, data, shape);

    /// <summary>Adds an F16 tensor.</summary>
    public SafetensorsWriter Add(string name, ReadOnlySpan<Half> data, int[] shape) => AddValues(name, DType.F16, data, shape);

    /// <summary>Adds an I64 tensor.</summary>
    public SafetensorsWriter Add(string name, ReadOnlySpan<long> data, int[] shape) => AddValues(name, DType.I64, data, shape);

    /// <summary>Adds an I32 tensor.</summary>
    public SafetensorsWriter Add(string name, ReadOnlySpan<int> data, int[] shape) => AddValues(name, DType.I32, data, shape);

    /// <summary>Adds an I16 tensor.</summary>
    public SafetensorsWriter Add(string name, ReadOnlySpan<short> data, int[] shape) => AddValues(name, DType.I16, data, shape);

    /// <summary>Adds an I8 tensor.</summary>
    public SafetensorsWriter Add(string name, ReadOnlySpan<sbyte> data, int[] shape) => AddValues(name, DType.I8, data, shape);

    /// <summary>Adds a U8 tensor.</summary>
    public SafetensorsWriter Add(string name, ReadOnlySpan<byte> data, int[] shape) => AddValues(name, DType.U8, data, shape);

    /// <summary>Adds a BOOL tensor.</summary>
    public SafetensorsWriter Add(string name, ReadOnlySpan<bool> data, int[] shape) => AddValues(name, DType.Bool, data, shape);

    /// <summary>Adds a BF16 tensor, rounding each float to nearest even (<see cref="NumericConversions.SingleToBFloat16(float)"/>).</summary>
    public SafetensorsWriter AddBFloat16(string name, ReadOnlySpan<float> data, int[] shape)
    {
        var bits = new ushort[data.Length];
        NumericConversions.SingleToBFloat16(data, bits);
        return Add(name, DType.BF16, shape, MemoryMarshal.AsBytes(bits.AsSpan()));
    }

    /// <summary>Adds a copy of <paramref name="tensor"/> (any device) with its dtype and shape.</summary>
    public SafetensorsWriter Add(string name, Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.ByteCount > Array.MaxLength)
            throw new ArgumentException(
                $"tensor {SafetensorsFormat.Quote(name)} has {tensor.ByteCount} bytes, too many to hold in memory; stream it with SafetensorsWriter.Create",
                nameof(tensor));
        var bytes = new byte[tensor.ByteCount];
        tensor.Device.Download(tensor, bytes);
        return Add(name, tensor.DType, tensor.Shape.ToArray(), bytes);
    }

    /// <summary>
    /// Writes the file to a temporary file beside <paramref name="path"/> and renames it into place when complete;
    /// on any failure nothing is left behind and an existing file at <paramref name="path"/> is untouched.
    /// </summary>
    public void Save(string path)
    {
        using var writer = Create(path, _layout, _metadata);
        for (int i = 0; i < _layout.Count; i++)
            writer.Write(_layout[i].Name, _data[i]);
        writer.Complete();
    }

    /// <summary>Writes the file's bytes to <paramref name="stream"/>.</summary>
    public void WriteTo(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        stream.Write(SafetensorsFormat.BuildHeader(_layout, _metadata, out _, out _));
        foreach (var bytes in _data)
            stream.Write(bytes);
    }

    /// <summary>The file's bytes.</summary>
    public byte[] ToArray()
    {
        using var memory = new MemoryStream();
        WriteTo(memory);
        return memory.ToArray();
    }

    /// <summary>
    /// Starts streaming a file whose tensors are declared up front (names, dtypes, shapes, in file order): the header is
    /// written at once, then each tensor's bytes are written in order with <see cref="SafetensorsStreamWriter.Write(string, ReadOnlySpan{byte})"/>,
    /// and the file is renamed into place by <see cref="SafetensorsStreamWriter.Complete"/> only. Disposing without
    /// Complete leaves nothing behind.
    /// </summary>
    /// <exception cref="ArgumentException">The layout or metadata is invalid (nothing is created then).</exception>
    internal static SafetensorsStreamWriter Create(
        string path,
        IReadOnlyList<(string Name, DType DType, int[] Shape)> layout,
        IReadOnlyDictionary<string, string>? metadata = null) =>
        new(path, layout, metadata ?? new Dictionary<string, string>());

    private SafetensorsWriter AddValues<T>(string name, DType type, ReadOnlySpan<T> data, int[] shape) where T : unmanaged =>
        Add(name, type, shape, MemoryMarshal.AsBytes(data));
}
