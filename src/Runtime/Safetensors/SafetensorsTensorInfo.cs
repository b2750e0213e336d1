namespace BlockDance.Runtime.Safetensors;

/// <summary>One tensor entry of a validated safetensors header.</summary>
public sealed class SafetensorsTensorInfo
{
    private readonly int[] _shape;

    internal SafetensorsTensorInfo(string name, DType type, int[] shape, long elementCount, long dataBegin, long dataEnd, long fileOffset)
    {
        Name = name;
        DType = type;
        _shape = shape;
        ElementCount = elementCount;
        DataBegin = dataBegin;
        DataEnd = dataEnd;
        FileOffset = fileOffset;
    }

    /// <summary>The tensor's name (its key in the header).</summary>
    public string Name { get; }
    /// <summary>The element type.</summary>
    public DType DType { get; }

    /// <summary>The dimensions, outermost first (row-major); empty for a scalar. Read-only, like <see cref="Tensor.Shape"/>.</summary>
    public ReadOnlySpan<int> Shape => _shape;

    /// <summary>Number of dimensions (0 for a scalar).</summary>
    public int Rank => _shape.Length;

    /// <summary>Number of elements (1 for a scalar, 0 when a dimension is 0).</summary>
    public long ElementCount { get; }

    /// <summary>The header's <c>data_offsets[0]</c>: where the bytes begin, relative to the start of the data section.</summary>
    public long DataBegin { get; }

    /// <summary>The header's <c>data_offsets[1]</c>: where the bytes end (exclusive), relative to the data section.</summary>
    public long DataEnd { get; }

    /// <summary>Where the bytes begin, counted from the start of the file.</summary>
    public long FileOffset { get; }

    /// <summary>Number of bytes: <see cref="ElementCount"/> × the element size.</summary>
    public long ByteLength => DataEnd - DataBegin;

    /// <summary>The shape as text, e.g. "[4, 128]".</summary>
    public string ShapeString => ShapeUtil.Format(_shape);

    /// <summary>A copy of the shape, e.g. for <see cref="Device.Allocate"/>.</summary>
    public int[] ShapeToArray() => (int[])_shape.Clone();

    /// <summary>Name, dtype, shape and data offsets, for messages.</summary>
    public override string ToString() => $"{Name}: {DType.SafetensorsName()} {ShapeString} @ [{DataBegin}, {DataEnd})";
}
