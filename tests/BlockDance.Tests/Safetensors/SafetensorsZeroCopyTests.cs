using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using BlockDance.Runtime;
using BlockDance.Runtime.Safetensors;
using Xunit;

namespace BlockDance.Tests.Safetensors;

/// <summary>Proof that reading hands out views of the mapping, not copies. One test reads the CPU device's live-byte
/// count, which is per process: the class runs in the collection no other test runs beside.</summary>
[Collection(nameof(ProcessWideSettings))]
public sealed class SafetensorsZeroCopyTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private string WriteFile(int floats)
    {
        string path = _dir.File("weights.safetensors");
        new SafetensorsWriter()
            .Add("small", [1f, 2f, 3f], [3])
            .Add("big", Enumerable.Range(0, floats).Select(i => (float)i).ToArray(), [floats])
            .Save(path);
        return path;
    }

    [Fact]
    public unsafe void Addresses_point_into_one_mapping_and_repeated_reads_give_the_same_address()
    {
        using var file = SafetensorsFile.Open(WriteFile(1 << 20));
        nint big = file.GetAddress("big");
        nint small = file.GetAddress("small");
        // One mapping: the addresses are as far apart as the tensors are in the file.
        Assert.Equal(file["big"].FileOffset - file["small"].FileOffset, big - small);
        nint mappingStart = small - (nint)file["small"].FileOffset;
        Assert.InRange(big, mappingStart, mappingStart + (nint)file.Length - 1);
        // The same bytes every time, not a fresh copy.
        Assert.Equal(big, file.GetAddress("big"));
        Assert.Equal(big, (nint)Unsafe.AsPointer(ref MemoryMarshal.GetReference(file.GetBytes("big"))));
        using var tensor = file.AsCpuTensor("big");
        Assert.Equal(big, tensor.Address);
        Assert.Equal(big, file.AsCpuTensor("big").Address);
        Assert.False(tensor.OwnsMemory);
        Assert.Equal(12345f, tensor.AsSpan<float>()[12345]);
    }

    [Fact]
    public void Borrowing_a_four_megabyte_tensor_allocates_almost_nothing()
    {
        using var file = SafetensorsFile.Open(WriteFile(1 << 20));
        _ = file.AsCpuTensor("big"); // JIT
        long liveBytes = CpuDevice.Instance.LiveBytes;
        long before = GC.GetAllocatedBytesForCurrentThread();
        var tensor = file.AsCpuTensor("big");
        int length = file.GetBytes("big").Length;
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(4 << 20, length);
        Assert.Equal(4L << 20, tensor.ByteCount);
        Assert.True(allocated < 1024, $"{allocated} bytes allocated for a 4 MiB tensor view");
        Assert.Equal(liveBytes, CpuDevice.Instance.LiveBytes); // no device allocation either
    }

    [Fact]
    public void Changes_to_the_file_show_through_an_open_view()
    {
        // A copy would keep the old bytes; a shared read-only mapping of the same file sees the new ones.
        Assert.SkipUnless(OperatingSystem.IsLinux(), "relies on Linux's shared file mappings");
        string path = WriteFile(16);
        using var file = SafetensorsFile.Open(path);
        var tensor = file.AsCpuTensor("small");
        Assert.Equal(1f, tensor.AsSpan<float>()[0]);
        using (var edit = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            edit.Position = file["small"].FileOffset;
            edit.Write(HandMade.Floats(42f));
        }
        Assert.Equal(42f, tensor.AsSpan<float>()[0]);
        Assert.Equal(42f, MemoryMarshal.Cast<byte, float>(file.GetBytes("small"))[0]);
    }

    [Fact]
    public void Saving_over_an_open_file_leaves_its_readers_on_the_old_contents()
    {
        // The writer renames a new file into place; the open mapping keeps the old one (POSIX rename semantics).
        Assert.SkipUnless(OperatingSystem.IsLinux(), "Windows refuses to replace a file that is mapped");
        string path = WriteFile(16);
        using var old = SafetensorsFile.Open(path);
        new SafetensorsWriter().Add("small", [7f], [1]).Save(path);
        Assert.Equal([1f, 2f, 3f], old.ReadFloat32("small"));
        using var replaced = SafetensorsFile.Open(path);
        Assert.Equal([7f], replaced.ReadFloat32("small"));
        Assert.False(replaced.Contains("big"));
    }
}
