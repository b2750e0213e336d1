using System.Runtime.InteropServices;
using System.Text;

namespace BlockDance.Runtime;

/// <summary>
/// A dense, row-major tensor in one device's memory. <see cref="Address"/> is a host pointer on the CPU device and a
/// device address (CUdeviceptr) on CUDA devices. A tensor created by <see cref="Device.Allocate"/> owns its memory and
/// frees it on <see cref="Dispose"/>; views (<see cref="View"/>, <see cref="Reshape"/>, <see cref="Slice"/>) and tensors
/// that wrap memory owned elsewhere (a memory-mapped checkpoint) never free anything.
/// </summary>
/// <remarks>
/// Ownership is checked: a view shares its owner's memory handle, and once that memory is gone (the owning tensor, the
/// model or the mapped file it belongs to was disposed) <see cref="Address"/> — and so every op, copy and read —
/// throws <see cref="ObjectDisposedException"/> saying what was disposed, instead of touching freed memory. Only
/// tensors made by the public <c>Borrow</c> are unchecked: their memory belongs to the caller.
/// </remarks>
public sealed class Tensor : IDisposable
{
    private readonly int[] _shape;
    private readonly nint _address;
    private readonly MemoryHandle? _memory;  // shared by the owner and its views; null for Borrow (unchecked)
    private readonly bool _ownsMemory;

    internal Tensor(Device device, DType type, int[] shape, nint address, MemoryHandle? memory, bool ownsMemory = true)
    {
        Device = device;
        DType = type;
        _shape = shape;
        _address = address;
        _memory = memory;
        _ownsMemory = memory is not null && ownsMemory;
        Count = ShapeUtil.Count(shape);
    }

    /// <summary>The device whose memory holds the elements.</summary>
    public Device Device { get; }

    /// <summary>The element type.</summary>
    public DType DType { get; }

    /// <summary>
    /// The first element's address (a host pointer, or a CUDA device address).
    /// </summary>
    /// <exception cref="ObjectDisposedException">The memory is gone: this tensor, its owner, or the model or file it is a view of was disposed.</exception>
    public nint Address
    {
        get
        {
            if (_memory is { IsClosed: true })
                ThrowDisposed();
            return _address;
        }
    }

    /// <summary>True when the tensor's memory is gone (see <see cref="Address"/>).</summary>
    public bool IsDisposed => _memory is { IsClosed: true };

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void ThrowDisposed() =>
        throw new ObjectDisposedException(ToString(), $"{this} was used after {_memory!.DisposedMessage}");

    /// <summary>Number of elements.</summary>
    public long Count { get; }
    /// <summary>Size in bytes.</summary>
    public long ByteCount => Count * DType.SizeOf();

    /// <summary>Number of dimensions.</summary>
    public int Rank => _shape.Length;

    /// <summary>The dimensions, outermost first.</summary>
    public ReadOnlySpan<int> Shape => _shape;

    /// <summary>True for a tensor made by <see cref="Device.Allocate"/>, which frees its memory on <see cref="Dispose"/>.</summary>
    public bool OwnsMemory => _ownsMemory;

    /// <summary>Size of dimension <paramref name="axis"/>; negative axes count from the end.</summary>
    public int Dim(int axis) => _shape[axis < 0 ? _shape.Length + axis : axis];

    /// <summary>Wraps memory that someone else owns (e.g. a memory-mapped file) as a tensor on <paramref name="device"/>.</summary>
    public static Tensor Borrow(Device device, DType type, nint address, params int[] shape) =>
        new(device, type, ShapeUtil.Validate(shape), address, null);

    /// <summary>Wraps memory held by <paramref name="memory"/> (a lease on a mapped file): checked, never freed by the tensor.</summary>
    internal static Tensor Borrow(Device device, DType type, nint address, MemoryHandle memory, int[] shape) =>
        new(device, type, ShapeUtil.Validate(shape), address, memory, ownsMemory: false);

    /// <summary>A view of <paramref name="shape"/> starting <paramref name="elementOffset"/> elements into this tensor.</summary>
    public Tensor View(long elementOffset, params int[] shape)
    {
        ShapeUtil.Validate(shape);
        long n = ShapeUtil.Count(shape);
        if (elementOffset < 0 || elementOffset + n > Count)
            throw new ArgumentException($"view [{elementOffset}, +{n}) is outside a tensor of {Count} elements {ShapeString}");
        return new Tensor(Device, DType, shape, Address + checked((nint)(elementOffset * DType.SizeOf())), _memory, ownsMemory: false);
    }

    /// <summary>The same elements under another shape with the same element count.</summary>
    public Tensor Reshape(params int[] shape)
    {
        ShapeUtil.Validate(shape);
        if (ShapeUtil.Count(shape) != Count)
            throw new ArgumentException($"cannot reshape {ShapeString} ({Count} elements) to {ShapeUtil.Format(shape)}");
        return new Tensor(Device, DType, shape, Address, _memory, ownsMemory: false);
    }

    /// <summary>Rows <c>[start, start+length)</c> of the first dimension.</summary>
    public Tensor Slice(int start, int length)
    {
        if (Rank == 0 || start < 0 || length < 0 || start + length > _shape[0])
            throw new ArgumentException($"slice [{start}, {start + length}) of the first dimension of {ShapeString}");
        var shape = (int[])_shape.Clone();
        shape[0] = length;
        return View(start * (Count / Math.Max(1, _shape[0])), shape);
    }

    /// <summary>The shape as text, e.g. "[2, 64, 128]".</summary>
    public string ShapeString => ShapeUtil.Format(_shape);

    /// <summary>True when the shape is exactly <paramref name="shape"/>.</summary>
    public bool HasShape(params ReadOnlySpan<int> shape) => _shape.AsSpan().SequenceEqual(shape);

    /// <summary>The elements as a span; only for tensors in host memory (the CPU device).</summary>
    public unsafe Span<T> AsSpan<T>() where T : unmanaged
    {
        if (!Device.IsHostMemory)
            throw new InvalidOperationException($"tensor {ShapeString} lives on {Device.Name}; copy it to the host first");
        if (sizeof(T) != DType.SizeOf())
            throw new InvalidOperationException($"cannot view {DType} elements as {typeof(T).Name}");
        // SAFETY: Address points at Count elements of this dtype for as long as the owner is alive.
        return new Span<T>((void*)Address, checked((int)Count));
    }

    /// <summary>Copies the tensor to a new managed array (any device).</summary>
    public T[] ToArray<T>() where T : unmanaged
    {
        var result = new T[Count];
        Device.Download(this, MemoryMarshal.AsBytes(result.AsSpan()));
        return result;
    }

    /// <summary>Copies a floating-point tensor (F32, F16, BF16, F64) of any device to a new float32 array.</summary>
    public float[] ToFloatArray()
    {
        switch (DType)
        {
            case DType.F32:
                return ToArray<float>();
            case DType.F16:
            {
                var result = new float[Count];
                NumericConversions.HalfToSingle(ToArray<Half>(), result);
                return result;
            }
            case DType.BF16:
            {
                var result = new float[Count];
                NumericConversions.BFloat16ToSingle(ToArray<ushort>(), result);
                return result;
            }
            case DType.F64:
                return Array.ConvertAll(ToArray<double>(), v => (float)v);
            default:
                throw new InvalidOperationException($"{this} is not a floating-point tensor");
        }
    }

    /// <summary>Copies <paramref name="source"/> into this tensor (any device).</summary>
    public void CopyFrom<T>(ReadOnlySpan<T> source) where T : unmanaged
    {
        if ((long)source.Length * Marshal.SizeOf<T>() != ByteCount)
            throw new ArgumentException($"source has {source.Length} elements of {typeof(T).Name}, tensor {ShapeString} needs {ByteCount} bytes");
        Device.Upload(MemoryMarshal.AsBytes(source), this);
    }

    /// <summary>Frees the memory of a tensor that owns it (its views then throw when used); does nothing for a view. Idempotent.</summary>
    public void Dispose()
    {
        if (_ownsMemory)
            _memory!.Dispose();
    }

    /// <summary>Dtype, shape and device, for messages.</summary>
    public override string ToString() => $"Tensor({DType}, {ShapeString}, {Device.Name})";
}

internal static class ShapeUtil
{
    public static int[] Validate(int[] shape)
    {
        foreach (int d in shape)
            if (d < 0)
                throw new ArgumentException($"negative dimension in shape {Format(shape)}");
        return shape;
    }

    public static long Count(ReadOnlySpan<int> shape)
    {
        long n = 1;
        foreach (int d in shape)
            n = checked(n * d);
        return n;
    }

    public static string Format(ReadOnlySpan<int> shape)
    {
        var sb = new StringBuilder("[");
        for (int i = 0; i < shape.Length; i++)
        {
            if (i > 0) sb.Append(", ");
            sb.Append(shape[i]);
        }
        return sb.Append(']').ToString();
    }
}
