using System.Runtime.InteropServices;

namespace BlockDance.Runtime;

/// <summary>Host memory: 64-byte aligned native allocations, plain pointers.</summary>
public sealed class CpuDevice : Device
{
    /// <summary>The one CPU device of the process (it holds no resources).</summary>
    public static CpuDevice Instance { get; } = new();

    private CpuDevice() { }

    /// <inheritdoc/>
    public override string Name => "cpu";
    /// <inheritdoc/>
    public override bool IsHostMemory => true;

    /// <inheritdoc/>
    protected override unsafe nint AllocateBytes(long bytes)
    {
        void* p = NativeMemory.AlignedAlloc(checked((nuint)bytes), 64);
        return p is null ? throw new OutOfMemoryException($"cpu: cannot allocate {bytes} bytes") : (nint)p;
    }

    /// <inheritdoc/>
    protected override unsafe void FreeBytes(nint address, long bytes) => NativeMemory.AlignedFree((void*)address);

    /// <inheritdoc/>
    public override unsafe void Upload(ReadOnlySpan<byte> src, Tensor dst)
    {
        CheckOwn(dst, "upload into");
        if (src.Length != dst.ByteCount)
            throw new ArgumentException($"upload of {src.Length} bytes into {dst} ({dst.ByteCount} bytes)");
        src.CopyTo(new Span<byte>((void*)dst.Address, src.Length));
    }

    /// <inheritdoc/>
    public override unsafe void Download(Tensor src, Span<byte> dst)
    {
        CheckOwn(src, "download");
        if (dst.Length != src.ByteCount)
            throw new ArgumentException($"download of {src} ({src.ByteCount} bytes) into {dst.Length} bytes");
        new ReadOnlySpan<byte>((void*)src.Address, dst.Length).CopyTo(dst);
    }

    /// <inheritdoc/>
    public override unsafe void Copy(Tensor src, Tensor dst)
    {
        CheckCopy(src, dst);
        Buffer.MemoryCopy((void*)src.Address, (void*)dst.Address, dst.ByteCount, src.ByteCount);
    }

    /// <summary>Does nothing: CPU work is done when the call that queued it returns.</summary>
    public override void Synchronize() { }

    /// <summary>Does nothing: the shared CPU device is never released (tensors allocated on it free their own memory).</summary>
    public override void Dispose() { }
}
