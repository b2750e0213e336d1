using System.Runtime.InteropServices;
using BlockDance.Runtime;
using BlockDance.Runtime.Safetensors;
using Xunit;

namespace BlockDance.Tests.Safetensors;

public sealed class SafetensorsRoundTripTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly int[][] Shapes = [[], [0], [3, 0, 2], [7], [2, 3], [2, 1, 3, 1]];

    private static byte[] RandomBytes(Random random, long count)
    {
        var bytes = new byte[count];
        random.NextBytes(bytes);
        return bytes;
    }

    [Fact]
    public void Every_DType_and_shape_with_metadata()
    {
        var random = new Random(42);
        var writer = new SafetensorsWriter()
            .SetMetadata("format", "pt")
            .SetMetadata("quotes \" and \\ backslash", "line\nbreak\ttab\u0001control")
            .SetMetadata("ünïcödé ✓ 𝄞", "值")
            .SetMetadata("", "");
        var expected = new List<(string Name, DType Type, int[] Shape, byte[] Bytes)>();
        foreach (DType type in Enum.GetValues<DType>())
        {
            foreach (int[] shape in Shapes)
            {
                string name = $"{type.SafetensorsName().ToLowerInvariant()}.{string.Join('x', shape)}";
                byte[] bytes = RandomBytes(random, shape.Aggregate(1L, (a, b) => a * b) * type.SizeOf());
                writer.Add(name, type, shape, bytes);
                expected.Add((name, type, shape, bytes));
            }
        }
        string path = _dir.File("all.safetensors");
        writer.Save(path);

        using var file = SafetensorsFile.Open(path);
        Assert.Equal(path, file.Path);
        Assert.Equal(writer.Metadata.ToList(), file.Metadata.ToList()); // same entries, same order
        Assert.Equal(expected.Select(e => e.Name), file.Tensors.Select(t => t.Name));
        Assert.Equal(0, file.HeaderLength % 8);
        long offset = 0;
        foreach (var (name, type, shape, bytes) in expected)
        {
            var info = file[name];
            Assert.Equal(type, info.DType);
            Assert.Equal(shape, info.ShapeToArray());
            Assert.Equal(shape.Length, info.Rank);
            Assert.Equal(bytes.Length / type.SizeOf(), info.ElementCount);
            Assert.Equal(offset, info.DataBegin);
            Assert.Equal(offset + bytes.Length, info.DataEnd);
            Assert.Equal(file.DataOffset + offset, info.FileOffset);
            Assert.Equal(bytes, file.GetBytes(name).ToArray());
            var tensor = file.AsCpuTensor(name);
            Assert.Equal(type, tensor.DType);
            Assert.True(tensor.HasShape(shape));
            Assert.False(tensor.OwnsMemory);
            offset += bytes.Length;
        }
        Assert.Equal(file.Length, file.DataOffset + offset);
    }

    [Fact]
    public void Typed_arrays_round_trip_through_the_converting_readers()
    {
        float[] f32 = [1.5f, -0f, float.MaxValue, float.Epsilon, float.NegativeInfinity, 3.14159274f];
        double[] f64 = [0.1, -2.5, 1e300, double.Epsilon, 16777217.0];
        Half[] f16 = [(Half)1.5f, Half.MaxValue, Half.Epsilon, Half.NegativeInfinity, (Half)(-0.0f)];
        long[] i64 = [long.MinValue, -1, 0, 1, long.MaxValue, 16777217];
        int[] i32 = [int.MinValue, -7, 0, int.MaxValue, 16777217];
        short[] i16 = [short.MinValue, -1, short.MaxValue];
        sbyte[] i8 = [sbyte.MinValue, -1, 0, sbyte.MaxValue];
        byte[] u8 = [0, 1, 128, 255];
        bool[] flags = [true, false, true];
        float[] bf16Source = [1f, 1.00390625f, 1.01171875f, -3.3895314e38f];
        string path = _dir.File("typed.safetensors");
        new SafetensorsWriter()
            .Add("f32", f32, [2, 3])
            .Add("f64", f64, [5])
            .Add("f16", f16, [5])
            .Add("i64", i64, [6])
            .Add("i32", i32, [5])
            .Add("i16", i16, [3])
            .Add("i8", i8, [2, 2])
            .Add("u8", u8, [4])
            .Add("bool", flags, [3])
            .Add("scalar", [2.5f], [])
            .AddBFloat16("bf16", bf16Source, [4])
            .Save(path);

        using var file = SafetensorsFile.Open(path);
        Assert.Equal(DType.F32, file["f32"].DType);
        Assert.Equal(f32, file.ReadFloat32("f32"));
        Assert.Equal(f64.Select(v => (float)v), file.ReadFloat32("f64"));
        Assert.Equal(f16.Select(v => (float)v), file.ReadFloat32("f16"));
        Assert.Equal(i64.Select(v => (float)v), file.ReadFloat32("i64"));
        Assert.Equal(16777216f, file.ReadFloat32("i64")[5]); // 2^24 + 1 rounds to even
        Assert.Equal(i32.Select(v => (float)v), file.ReadFloat32("i32"));
        Assert.Equal(i16.Select(v => (float)v), file.ReadFloat32("i16"));
        Assert.Equal(i8.Select(v => (float)v), file.ReadFloat32("i8"));
        Assert.Equal(u8.Select(v => (float)v), file.ReadFloat32("u8"));
        Assert.Equal([1f, 0f, 1f], file.ReadFloat32("bool"));
        Assert.Equal([2.5f], file.ReadFloat32("scalar"));
        Assert.Empty(file["scalar"].ShapeToArray());
        // 1.00390625 = 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even gives 1.
        Assert.Equal([1f, 1f, 1.015625f, -3.3895314e38f], file.ReadFloat32("bf16"));

        Assert.Equal(i64, file.ReadInt64("i64"));
        Assert.Equal(i32.Select(v => (long)v), file.ReadInt64("i32"));
        Assert.Equal(i16.Select(v => (long)v), file.ReadInt64("i16"));
        Assert.Equal(i8.Select(v => (long)v), file.ReadInt64("i8"));
        Assert.Equal(u8.Select(v => (long)v), file.ReadInt64("u8"));
        Assert.Equal([1L, 0L, 1L], file.ReadInt64("bool"));
        var e = Assert.Throws<SafetensorsException>(() => file.ReadInt64("f32"));
        Assert.Equal("f32", e.TensorName);
        Assert.Contains("is F32; ReadInt64 reads integer tensors", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Bool_bytes_other_than_one_read_as_true()
    {
        string path = _dir.Write("bool.safetensors",
            HandMade.File("""{"b":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}}""", [0, 2, 255]));
        using var file = SafetensorsFile.Open(path);
        Assert.Equal([0L, 1L, 1L], file.ReadInt64("b"));
        Assert.Equal([0f, 1f, 1f], file.ReadFloat32("b"));
    }

    [Fact]
    public void Tensors_from_any_device_are_downloaded()
    {
        using var host = CpuDevice.Instance.FromHost<float>([1, 2, 3, 4, 5, 6], DType.F32, 3, 2);
        var remote = new FakeDevice(pattern: 0x5A);
        var onRemote = Tensor.Borrow(remote, DType.I16, 12345, 2, 2);
        string path = _dir.File("devices.safetensors");
        new SafetensorsWriter().Add("host", host).Add("remote", onRemote).Save(path);

        using var file = SafetensorsFile.Open(path);
        Assert.Equal([3, 2], file["host"].ShapeToArray());
        Assert.Equal([1f, 2, 3, 4, 5, 6], file.ReadFloat32("host"));
        Assert.Equal(DType.I16, file["remote"].DType);
        Assert.Equal(Enumerable.Repeat((byte)0x5A, 8), file.GetBytes("remote").ToArray());
        Assert.Equal(1, remote.Downloads);
    }

    [Fact]
    public void Streaming_writer_writes_in_chunks_and_from_tensors()
    {
        float[] big = Enumerable.Range(0, 1000).Select(i => i * 0.5f).ToArray();
        using var tensor = CpuDevice.Instance.FromHost<long>([10, 20, 30], DType.I64, 3);
        string path = _dir.File("streamed.safetensors");
        using (var writer = SafetensorsWriter.Create(path,
                   [("big", DType.F32, [10, 100]), ("empty", DType.F16, [0, 4]), ("ids", DType.I64, [3])],
                   new Dictionary<string, string> { ["k"] = "v" }))
        {
            var bytes = MemoryMarshal.AsBytes(big.AsSpan());
            writer.Write("big", bytes[..1000]);
            writer.Write("big", bytes[1000..1003]); // chunks need not align with elements
            writer.Write("big", bytes[1003..]);
            Assert.Equal(1, writer.TensorsWritten);
            writer.Write("empty", []);
            writer.Write("ids", tensor);
            Assert.True(writer.IsComplete);
            Assert.False(File.Exists(path)); // not before Complete
            writer.Complete();
        }
        Assert.Equal(["streamed.safetensors"], _dir.FileNames());

        using var file = SafetensorsFile.Open(path);
        Assert.Equal("v", file.Metadata["k"]);
        Assert.Equal(big, file.ReadFloat32("big"));
        Assert.Equal([0, 4], file["empty"].ShapeToArray());
        Assert.Empty(file.ReadFloat32("empty"));
        Assert.Equal([10L, 20L, 30L], file.ReadInt64("ids"));
        // The in-memory writer produces the same bytes for the same layout.
        byte[] same = new SafetensorsWriter().SetMetadata("k", "v")
            .Add("big", big, [10, 100]).Add("empty", ReadOnlySpan<Half>.Empty, [0, 4]).Add("ids", [10L, 20L, 30L], [3]).ToArray();
        Assert.Equal(same, File.ReadAllBytes(path));
    }

    [Fact]
    public void Streaming_writer_publishes_only_on_complete()
    {
        // Every byte written but Complete never called (as when an exception leaves the using block): nothing appears.
        string path = _dir.File("disposed.safetensors");
        using (var writer = SafetensorsWriter.Create(path, [("a", DType.U8, [2])]))
            writer.Write("a", [1, 2]);
        Assert.False(File.Exists(path));
        Assert.Empty(_dir.FileNames());
        using (var writer = SafetensorsWriter.Create(path, [("a", DType.U8, [2])]))
        {
            writer.Write("a", [1, 2]);
            writer.Complete();
        }
        using var file = SafetensorsFile.Open(path);
        Assert.Equal([1, 2], file.GetBytes("a").ToArray());
    }

    [Fact]
    public void Reader_accepts_header_order_different_from_data_order_and_ignores_unknown_keys()
    {
        // Files from older writers list tensors in any order (the reference reader sorts by offset); entries may carry
        // keys the format does not define, which the reference ignores. __metadata__ may be null.
        string header = """
            {"__metadata__":null,
             "second":{"dtype":"F32","shape":[1],"data_offsets":[4,8],"comment":{"x":[1,2,{}]}},
             "empty":{"data_offsets":[4,4],"shape":[0],"dtype":"I8"},
             "first":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}   
            """;
        string path = _dir.Write("order.safetensors", HandMade.File(header, HandMade.Floats(1, 2)));
        using var file = SafetensorsFile.Open(path);
        Assert.Equal(["second", "empty", "first"], file.Tensors.Select(t => t.Name));
        Assert.Empty(file.Metadata);
        Assert.Equal([1f], file.ReadFloat32("first"));
        Assert.Equal([2f], file.ReadFloat32("second"));
        Assert.Equal(file.DataOffset + 4, file["empty"].FileOffset);
    }

    [Fact]
    public void Empty_file_of_no_tensors()
    {
        string path = _dir.File("none.safetensors");
        new SafetensorsWriter().Save(path);
        using var file = SafetensorsFile.Open(path);
        Assert.Empty(file.Tensors);
        Assert.Empty(file.Metadata);
        Assert.Equal(16, file.Length);
    }

    [Fact]
    public void Lookups_and_their_misses()
    {
        string path = _dir.File("lookup.safetensors");
        new SafetensorsWriter().Add("a.b", [1f], [1]).Save(path);
        using var file = SafetensorsFile.Open(path);
        Assert.True(file.Contains("a.b"));
        Assert.False(file.Contains("a.B"));
        Assert.True(file.TryGet("a.b", out var info));
        Assert.Equal("a.b: F32 [1] @ [0, 4)", info.ToString());
        Assert.False(file.TryGet("missing", out _));
        var e = Assert.Throws<KeyNotFoundException>(() => file["missing"]);
        Assert.Equal($"{path}: no tensor 'missing' (the file has 1 tensors)", e.Message);
        Assert.Throws<KeyNotFoundException>(() => file.GetBytes("missing"));
        Assert.Throws<KeyNotFoundException>(() => file.AsCpuTensor("missing"));
    }

    [Fact]
    public void Every_member_but_path_throws_after_dispose()
    {
        string path = _dir.File("disposed.safetensors");
        new SafetensorsWriter().Add("a", [1f], [1]).Save(path);
        var file = SafetensorsFile.Open(path);
        file.Dispose();
        file.Dispose(); // twice is fine
        Assert.Equal(path, file.Path);
        Assert.Throws<ObjectDisposedException>(() => file.Tensors);
        Assert.Throws<ObjectDisposedException>(() => file.Metadata);
        Assert.Throws<ObjectDisposedException>(() => file.Length);
        Assert.Throws<ObjectDisposedException>(() => file.HeaderLength);
        Assert.Throws<ObjectDisposedException>(() => file.DataOffset);
        Assert.Throws<ObjectDisposedException>(() => file.Contains("a"));
        Assert.Throws<ObjectDisposedException>(() => file.TryGet("a", out _));
        Assert.Throws<ObjectDisposedException>(() => file["a"]);
        Assert.Throws<ObjectDisposedException>(() => file.GetBytes("a").Length);
        Assert.Throws<ObjectDisposedException>(() => file.GetAddress("a"));
        Assert.Throws<ObjectDisposedException>(() => file.AsCpuTensor("a"));
        Assert.Throws<ObjectDisposedException>(() => file.ReadFloat32("a"));
        Assert.Throws<ObjectDisposedException>(() => file.ReadInt64("a"));
        // The mapping is gone: the file can be deleted and re-created.
        File.Delete(path);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void Names_with_characters_that_need_escaping()
    {
        string[] names = ["quote\"d", "back\\slash", "new\nline", "tab\t", "\u0000nul", "ünï 𝄞", "__metadata__x", ""];
        var writer = new SafetensorsWriter();
        for (int i = 0; i < names.Length; i++)
            writer.Add(names[i], [(sbyte)i], [1]);
        string path = _dir.File("names.safetensors");
        writer.Save(path);
        using var file = SafetensorsFile.Open(path);
        Assert.Equal(names, file.Tensors.Select(t => t.Name));
        for (int i = 0; i < names.Length; i++)
            Assert.Equal([(long)i], file.ReadInt64(names[i]));
    }

    [Fact]
    public void Saving_replaces_an_existing_file()
    {
        string path = _dir.Write("replace.safetensors", [1, 2, 3]);
        new SafetensorsWriter().Add("x", [5L], [1]).Save(path);
        using var file = SafetensorsFile.Open(path);
        Assert.Equal([5L], file.ReadInt64("x"));
        Assert.Equal(["replace.safetensors"], _dir.FileNames());
    }

    /// <summary>Reads every fixture the Python tools wrote (tools/safetensors_io.py), when the fixtures are present.</summary>
    [Fact]
    public void Fixtures_written_by_the_python_tools_are_readable()
    {
        string fixtures = Path.Combine(AppContext.BaseDirectory, "fixtures");
        string[] files = Directory.Exists(fixtures) ? Directory.GetFiles(fixtures, "*.safetensors") : [];
        Assert.SkipWhen(files.Length == 0, "no fixtures/*.safetensors next to the test assembly");
        foreach (string path in files)
        {
            using var file = SafetensorsFile.Open(path);
            foreach (var t in file.Tensors)
                Assert.Equal(t.ElementCount, t.DType == DType.I64 ? file.ReadInt64(t.Name).Length : file.ReadFloat32(t.Name).Length);
        }
    }
}

/// <summary>A device whose memory is not host memory: downloads fill the destination with a pattern.</summary>
internal sealed class FakeDevice(byte pattern, Exception? failDownloadWith = null) : Device
{
    public int Downloads { get; private set; }

    public override string Name => "fake";
    public override bool IsHostMemory => false;

    protected override nint AllocateBytes(long bytes) => throw new NotSupportedException();
    protected override void FreeBytes(nint address, long bytes) => throw new NotSupportedException();
    public override void Upload(ReadOnlySpan<byte> src, Tensor dst) => throw new NotSupportedException();
    public override void Copy(Tensor src, Tensor dst) => throw new NotSupportedException();
    public override void Synchronize() { }

    public override void Download(Tensor src, Span<byte> dst)
    {
        Downloads++;
        if (failDownloadWith is not null)
            throw failDownloadWith;
        Assert.Equal(src.ByteCount, dst.Length);
        dst.Fill(pattern);
    }
}
