using System.Runtime.InteropServices;

namespace BlockDance.Runtime;

/// <summary>Host memory: 64-byte aligned native allocations, plain pointers.</summary>
public sealed class CpuDevice : Device
{
    public static CpuDevice Instance { get; } = new();

    private CpuDevice() { }

    public override string Name => "cpu";
    public override bool IsHostMemory => true;

    protected override unsafe nint AllocateBytes(long bytes)
    {
        void* p = NativeMemory.AlignedAlloc(checked((nuint)bytes), 64);
        return p is null ? throw new OutOfMemoryException($"cpu: cannot allocate {bytes} bytes") : (nint)p;
    }

    protected override unsafe void FreeBytes(nint address, long bytes) => NativeMemory.AlignedFree((void*)address);

    public override unsafe void Upload(ReadOnlySpan<byte> src, Tensor dst)
    {
        CheckOwn(dst, "upload into");
        if (src.Length != dst.ByteCount)
            throw new ArgumentException($"upload of {src.Length} bytes into {dst} ({dst.ByteCount} bytes)");
        src.CopyTo(new Span<byte>((void*)dst.Address, src.Length));
    }

    public override unsafe void Download(Tensor src, Span<byte> dst)
    {
        CheckOwn(src, "download");
        if (dst.Length != src.ByteCount)
            throw new ArgumentException($"download of {src} ({src.ByteCount} bytes) into {dst.Length} bytes");
        new ReadOnlySpan<byte>((void*)src.Address, dst.Length).CopyTo(dst);
    }

    public override unsafe void Copy(Tensor src, Tensor dst)
    {
        CheckCopy(src, dst);
        Buffer.MemoryCopy((void*)src.Address, (void*)dst.Address, dst.ByteCount, src.ByteCount);
    }

    public override void Synchronize() { }

    public override void Dispose() { }
}
