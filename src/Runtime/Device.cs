namespace BlockDance.Runtime;

/// <summary>
/// A place where tensors live: the host (the CPU device) or a CUDA device (real or emulated). A device allocates and
/// frees memory and copies bytes between the host and itself; the math lives in <c>BlockDance.Kernels</c>.
/// Copies are ordered with the device's work; <see cref="Synchronize"/> waits for all of it.
/// </summary>
public abstract class Device : IDisposable
{
    /// <summary>Short name as given on the command line: "cpu", "cuda", "cuda-emu".</summary>
    public abstract string Name { get; }

    /// <summary>True when <see cref="Tensor.Address"/> is an ordinary host pointer.</summary>
    public abstract bool IsHostMemory { get; }

    /// <summary>Live allocations made through this device and their bytes.</summary>
    public long LiveAllocations => Interlocked.Read(ref _liveAllocations);
    /// <summary>Bytes of the live allocations made through this device.</summary>
    public long LiveBytes => Interlocked.Read(ref _liveBytes);
    private long _liveAllocations, _liveBytes;

    /// <summary>Allocates an uninitialised tensor that owns its memory (freed by <see cref="Tensor.Dispose"/>).</summary>
    /// <exception cref="ArgumentException">A dimension is negative.</exception>
    public Tensor Allocate(DType type, params int[] shape)
    {
        ShapeUtil.Validate(shape);
        long bytes = checked(ShapeUtil.Count(shape) * type.SizeOf());
        nint address = AllocateBytes(Math.Max(bytes, 1));
        Interlocked.Increment(ref _liveAllocations);
        Interlocked.Add(ref _liveBytes, bytes);
        return new Tensor(this, type, shape, address, new Allocation(this, address, bytes));
    }

    /// <summary>Allocates and fills a tensor from host data.</summary>
    public Tensor FromHost<T>(ReadOnlySpan<T> data, DType type, params int[] shape) where T : unmanaged
    {
        var t = Allocate(type, shape);
        try
        {
            t.CopyFrom(data);
        }
        catch
        {
            t.Dispose();
            throw;
        }
        return t;
    }

    /// <summary>Allocates a floating-point tensor of <paramref name="type"/> from float32 values, converting on the host.</summary>
    public Tensor FromFloats(ReadOnlySpan<float> values, DType type, params int[] shape)
    {
        switch (type)
        {
            case DType.F32:
                return FromHost(values, type, shape);
            case DType.F16:
            {
                var half = new Half[values.Length];
                NumericConversions.SingleToHalf(values, half);
                return FromHost<Half>(half, type, shape);
            }
            case DType.BF16:
            {
                var bf16 = new ushort[values.Length];
                NumericConversions.SingleToBFloat16(values, bf16);
                return FromHost<ushort>(bf16, type, shape);
            }
            default:
                throw new ArgumentException($"{type} is not a floating-point storage type for activations (F32, F16, BF16)");
        }
    }

    /// <summary>Allocates <paramref name="bytes"/> bytes of this device's memory and returns their address.</summary>
    protected abstract nint AllocateBytes(long bytes);
    /// <summary>Frees memory returned by <see cref="AllocateBytes"/>.</summary>
    protected abstract void FreeBytes(nint address, long bytes);

    /// <summary>Copies <c>dst.ByteCount</c> bytes from host memory into <paramref name="dst"/>.</summary>
    public abstract void Upload(ReadOnlySpan<byte> src, Tensor dst);

    /// <summary>Copies <paramref name="src"/> into host memory (waits for the copy to finish).</summary>
    public abstract void Download(Tensor src, Span<byte> dst);

    /// <summary>Copies one tensor into another of the same byte size on this device, in device order.</summary>
    public abstract void Copy(Tensor src, Tensor dst);

    /// <summary>Waits for all work queued on this device.</summary>
    public abstract void Synchronize();

    /// <summary>Throws <see cref="ArgumentException"/> unless both tensors live on this device and have the same byte size.</summary>
    protected void CheckCopy(Tensor a, Tensor b)
    {
        CheckOwn(a, "copy");
        CheckOwn(b, "copy");
        if (a.ByteCount != b.ByteCount)
            throw new ArgumentException($"copy between {a} and {b}: sizes differ ({a.ByteCount} vs {b.ByteCount} bytes)");
    }

    /// <summary>A tensor of another device holds an address this one cannot use: refuse it rather than dereference it.</summary>
    protected void CheckOwn(Tensor t, string what)
    {
        if (!ReferenceEquals(t.Device, this))
            throw new ArgumentException($"{Name}: cannot {what} {t}, which lives on another device ({t.Device.Name})");
    }

    /// <summary>Releases the device's resources; tensors allocated on it must be disposed first.</summary>
    public virtual void Dispose() => GC.SuppressFinalize(this);

    /// <summary>Owned memory of one <see cref="Tensor"/>.</summary>
    internal sealed class Allocation(Device device, nint address, long bytes) : IDisposable
    {
        private int _freed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _freed, 1) != 0)
                return;
            device.FreeBytes(address, Math.Max(bytes, 1));
            Interlocked.Decrement(ref device._liveAllocations);
            Interlocked.Add(ref device._liveBytes, -bytes);
        }
    }
}
