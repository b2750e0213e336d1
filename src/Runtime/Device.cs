namespace BlockDance.Runtime;

/// <summary>
/// A place where tensors live: the host (the CPU device) or a CUDA device (real or emulated). A device allocates and
/// frees memory and copies bytes between the host and itself; the math lives in <c>BlockDance.Kernels</c>.
/// Copies are ordered with the device's work; <see cref="Synchronize"/> waits for all of it.
/// </summary>
/// <para>
/// Ownership: <see cref="Dispose"/> drops the owner's reference. The device's native resources (a CUDA context, its
/// stream and cuBLAS handle) are released only when every tensor allocated on it has been freed as well, so disposing a
/// device (or the ops that own it) before a model or a run that uses it never pulls memory from under them; allocating
/// on a disposed device throws <see cref="ObjectDisposedException"/>.
/// </para>
/// <para>
/// Threads: a device and the ops on it run one thing at a time. <see cref="StepLock"/> is the lock that serialises
/// them: a <c>SamplingRun</c> holds it around each step, so that several runs can share one model from several threads.
/// </para>
public abstract class Device : IDisposable
{
    private readonly Lifetime _lifetime;

    /// <summary>Creates the device's lifetime; its native resources are released by <see cref="ReleaseResources"/>.</summary>
    protected Device() => _lifetime = new Lifetime(GetType().Name, () => ReleaseResources());

    /// <summary>
    /// The lock that serialises work on this device: the ops of a device share scratch memory (and, on CUDA, one stream),
    /// so they are not thread-safe. A <c>SamplingRun</c> holds it around each step (and around its set-up and result
    /// download); code that calls ops on a device shared with other threads must hold it too. Taking it allocates nothing.
    /// </summary>
    public Lock StepLock { get; } = new();

    /// <summary>True once the owner has called <see cref="Dispose"/> (the resources may live on for tensors still allocated).</summary>
    public bool IsDisposed => _lifetime.IsDisposed;

    /// <summary>The device's lifetime: allocations hold a reference on it.</summary>
    internal Lifetime Lifetime => _lifetime;

    /// <summary>Releases the native resources; called once, after the owner and every allocation have let go.</summary>
    protected virtual void ReleaseResources() { }

    /// <summary>Throws <see cref="ObjectDisposedException"/> naming this device once its resources are gone.</summary>
    protected void ThrowIfReleased()
    {
        if (_lifetime.IsReleased)
            throw new ObjectDisposedException(Name, $"the {Name} device was disposed");
    }
    /// <summary>Short name as given on the command line: "cpu", "cuda", "cuda-emu".</summary>
    public abstract string Name { get; }

    /// <summary>True when <see cref="Tensor.Address"/> is an ordinary host pointer.</summary>
    public abstract bool IsHostMemory { get; }

    /// <summary>Live allocations made through this device and their bytes.</summary>
    public long LiveAllocations => Interlocked.Read(ref _liveAllocations);
    /// <summary>Bytes of the live allocations made through this device.</summary>
    public long LiveBytes => Interlocked.Read(ref _liveBytes);
    private long _liveAllocations, _liveBytes;

    /// <summary>
    /// A new tensor that owns its memory (uninitialised), freed by <see cref="Tensor.Dispose"/> or, if it is forgotten,
    /// by the finaliser. Throws <see cref="ObjectDisposedException"/> on a disposed device.
    /// </summary>
    public Tensor Allocate(DType type, params int[] shape)
    {
        ShapeUtil.Validate(shape);
        long bytes = checked(ShapeUtil.Count(shape) * type.SizeOf());
        if (_lifetime.IsDisposed)
            throw new ObjectDisposedException(Name, $"cannot allocate on the {Name} device: it was disposed");
        var allocation = new Allocation(this, bytes);
        return new Tensor(this, type, shape, allocation.Address, allocation);
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

    /// <summary>
    /// Drops the owner's reference: the native resources go once every tensor allocated here is freed too. Calling it
    /// again does nothing.
    /// </summary>
    public virtual void Dispose()
    {
        _lifetime.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>
    /// Owned memory of one <see cref="Tensor"/>: a <see cref="System.Runtime.InteropServices.SafeHandle"/> that holds a
    /// reference on the device, so the device (its CUDA context) outlives the memory, and that frees the memory once,
    /// when the tensor is disposed or finalised.
    /// </summary>
    internal sealed class Allocation : MemoryHandle
    {
        private readonly Device _device;
        private readonly long _bytes;

        public Allocation(Device device, long bytes)
        {
            _device = device;
            _bytes = bytes;
            device._lifetime.AddRef();
            try
            {
                SetHandle(device.AllocateBytes(Math.Max(bytes, 1)));
            }
            catch
            {
                device._lifetime.DangerousRelease();
                SetHandleAsInvalid();
                GC.SuppressFinalize(this);
                throw;
            }
            Interlocked.Increment(ref device._liveAllocations);
            Interlocked.Add(ref device._liveBytes, bytes);
        }

        public nint Address => handle;

        public override string DisposedMessage => "its memory was freed when the tensor that owns it was disposed";

        protected override bool ReleaseHandle()
        {
            try
            {
                _device.FreeBytes(handle, Math.Max(_bytes, 1));
            }
            finally
            {
                Interlocked.Decrement(ref _device._liveAllocations);
                Interlocked.Add(ref _device._liveBytes, -_bytes);
                _device._lifetime.DangerousRelease();
            }
            return true;
        }
    }
}
