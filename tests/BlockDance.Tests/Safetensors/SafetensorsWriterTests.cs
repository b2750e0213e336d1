using System.Text;
using BlockDance.Runtime;
using BlockDance.Runtime.Safetensors;
using Xunit;

namespace BlockDance.Tests.Safetensors;

/// <summary>
/// The writer's bytes against files built by hand (header JSON typed out, not produced by the writer), and its
/// all-or-nothing behaviour on failure.
/// </summary>
public sealed class SafetensorsWriterTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static byte[] Expected(string paddedHeader, byte[] data)
    {
        Assert.Equal(0, Encoding.UTF8.GetByteCount(paddedHeader) % 8); // the hand-made header is padded correctly
        return HandMade.File(paddedHeader, data);
    }

    // The first three files are the ones the reference implementation's own tests pin down
    // (huggingface/safetensors, safetensors/src/tensor.rs: test_empty, test_serialization_forced_alignement).

    [Fact]
    public void No_tensors_no_metadata()
    {
        byte[] expected = [8, 0, 0, 0, 0, 0, 0, 0, (byte)'{', (byte)'}', 32, 32, 32, 32, 32, 32];
        Assert.Equal(expected, new SafetensorsWriter().ToArray());
    }

    [Fact]
    public void Metadata_only() =>
        Assert.Equal(
            Expected("{\"__metadata__\":{\"framework\":\"pt\"}}     ", []),
            new SafetensorsWriter().SetMetadata("framework", "pt").ToArray());

    [Fact]
    public void One_tensor_padded_with_spaces()
    {
        byte[] data = HandMade.Floats(0, 1, 2, 3, 4, 5);
        byte[] expected = Expected("{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       ", data);
        Assert.Equal(72UL, BitConverter.ToUInt64(expected, 0));
        Assert.Equal(expected, new SafetensorsWriter().Add("attn0", [0f, 1, 2, 3, 4, 5], [1, 1, 2, 3]).ToArray());
    }

    [Fact]
    public void Several_tensors_in_insertion_order_with_escaped_metadata()
    {
        // Typed out by hand: metadata first, tensors in the order added (not sorted), back to back, compact JSON,
        // only '"', '\' and control characters escaped, other characters as UTF-8.
        string header =
            "{\"__metadata__\":{\"k\\\"q\":\"line\\nbreak\\u0001\",\"é\":\"✓\"}," +
            "\"z.bias\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[0,2]}," +
            "\"a.weight\":{\"dtype\":\"I8\",\"shape\":[3,1],\"data_offsets\":[2,5]}," +
            "\"empty\":{\"dtype\":\"F64\",\"shape\":[0,7],\"data_offsets\":[5,5]}," +
            "\"flags\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[5,7]}}";
        header += new string(' ', (8 - Encoding.UTF8.GetByteCount(header) % 8) % 8);
        byte[] data = [0x80, 0x3F, 0xFF, 0x00, 0x7F, 1, 0];
        byte[] expected = Expected(header, data);

        byte[] written = new SafetensorsWriter()
            .SetMetadata("k\"q", "line\nbreak\u0001")
            .SetMetadata("é", "✓")
            .AddBFloat16("z.bias", [1f], [])
            .Add("a.weight", new sbyte[] { -1, 0, 127 }, [3, 1])
            .Add("empty", ReadOnlySpan<double>.Empty, [0, 7])
            .Add("flags", [true, false], [2])
            .ToArray();
        Assert.Equal(Encoding.UTF8.GetString(expected), Encoding.UTF8.GetString(written)); // readable diff first
        Assert.Equal(expected, written);

        // And the hand-made bytes read back as intended.
        string path = _dir.Write("hand.safetensors", expected);
        using var file = SafetensorsFile.Open(path);
        Assert.Equal(["z.bias", "a.weight", "empty", "flags"], file.Tensors.Select(t => t.Name));
        Assert.Equal("line\nbreak\u0001", file.Metadata["k\"q"]);
        Assert.Equal([1f], file.ReadFloat32("z.bias"));
        Assert.Equal([-1L, 0, 127], file.ReadInt64("a.weight"));
    }

    [Fact]
    public void Same_calls_same_bytes()
    {
        static byte[] Build() => new SafetensorsWriter()
            .SetMetadata("b", "2").SetMetadata("a", "1")
            .Add("y", [1f, 2f], [2]).Add("x", [3L], [1])
            .ToArray();
        Assert.Equal(Build(), Build());
    }

    [Fact]
    public void Set_metadata_replaces_in_place()
    {
        var writer = new SafetensorsWriter().SetMetadata("a", "1").SetMetadata("b", "2").SetMetadata("a", "3");
        Assert.Equal([new("a", "3"), new KeyValuePair<string, string>("b", "2")], writer.Metadata.ToList());
    }

    [Fact]
    public void Add_rejects_bad_input()
    {
        var writer = new SafetensorsWriter().Add("a", [1f], [1]);
        Assert.Contains("already added", Assert.Throws<ArgumentException>(() => writer.Add("a", [1f], [1])).Message, StringComparison.Ordinal);
        Assert.Contains("reserved", Assert.Throws<ArgumentException>(() => writer.Add("__metadata__", [1f], [1])).Message, StringComparison.Ordinal);
        Assert.Contains("negative dimension", Assert.Throws<ArgumentException>(() => writer.Add("n", [1f], [-1])).Message, StringComparison.Ordinal);
        Assert.Contains("shape [2, 2] × F32 = 16 bytes but 12 bytes were given",
            Assert.Throws<ArgumentException>(() => writer.Add("b", [1f, 2f, 3f], [2, 2])).Message, StringComparison.Ordinal);
        Assert.Contains("overflows", Assert.Throws<ArgumentException>(() => writer.Add("o", DType.F64, [int.MaxValue, int.MaxValue, 2], [])).Message, StringComparison.Ordinal);
        Assert.Equal(["a"], writer.TensorNames);
    }

    [Fact]
    public void Lone_surrogates_are_rejected_not_replaced()
    {
        var writer = new SafetensorsWriter().Add("bad\ud800", [1f], [1]);
        Assert.Contains("not valid UTF-16", Assert.Throws<ArgumentException>(() => writer.ToArray()).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => writer.Save(_dir.File("x.safetensors")));
        Assert.Empty(_dir.FileNames());
    }

    // ---- all or nothing ----

    [Fact]
    public void Stream_disposed_before_the_last_tensor_leaves_nothing()
    {
        string path = _dir.File("partial.safetensors");
        using (var writer = SafetensorsWriter.Create(path, [("a", DType.U8, [2]), ("b", DType.U8, [2])]))
        {
            writer.Write("a", [1, 2]);
            writer.Write("b", [3]);
            Assert.Single(_dir.FileNames()); // the temporary file, beside the destination
            Assert.StartsWith("partial.safetensors.", _dir.FileNames()[0], StringComparison.Ordinal);
        }
        Assert.Empty(_dir.FileNames());
    }

    [Fact]
    public void Exception_midway_leaves_nothing_and_keeps_the_old_file()
    {
        string path = _dir.Write("model.safetensors", [1, 2, 3, 4]);
        var failing = new FakeDevice(0, new IOException("device lost"));
        var broken = Tensor.Borrow(failing, DType.F32, 4096, 1000);
        var e = Assert.Throws<IOException>(() =>
        {
            using var writer = SafetensorsWriter.Create(path, [("ok", DType.F32, [2]), ("broken", DType.F32, [1000]), ("never", DType.U8, [1])]);
            writer.Write("ok", HandMade.Floats(1, 2));
            writer.Write("broken", broken);
            writer.Complete();
        });
        Assert.Equal("device lost", e.Message);
        Assert.Equal(["model.safetensors"], _dir.FileNames());
        Assert.Equal([1, 2, 3, 4], File.ReadAllBytes(path));
    }

    [Fact]
    public void In_memory_writer_failing_midway_leaves_nothing()
    {
        var failing = new FakeDevice(0, new InvalidOperationException("boom"));
        var writer = new SafetensorsWriter().Add("a", [1f], [1]);
        Assert.Throws<InvalidOperationException>(() => writer.Add("b", Tensor.Borrow(failing, DType.F32, 4096, 4)));
        Assert.Equal(["a"], writer.TensorNames);

        // Saving over a directory fails at the final rename: the temporary file must go too.
        string blocked = _dir.File("blocked.safetensors");
        Directory.CreateDirectory(blocked);
        Assert.ThrowsAny<IOException>(() => writer.Save(blocked));
        Assert.Equal(["blocked.safetensors"], _dir.FileNames());
        Assert.Empty(Directory.GetFileSystemEntries(blocked));

        Assert.Throws<DirectoryNotFoundException>(() => writer.Save(_dir.File("no/such/dir/x.safetensors")));
        Assert.Equal(["blocked.safetensors"], _dir.FileNames());
    }

    [Fact]
    public void Invalid_layout_creates_no_file()
    {
        string path = _dir.File("bad.safetensors");
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Create(path, [("a", DType.U8, [1]), ("a", DType.U8, [1])]));
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Create(path, [("__metadata__", DType.U8, [1])]));
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Create(path, [("n", DType.U8, [-2])]));
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Create(path, [("n", DType.U8, null!)]));
        Assert.Empty(_dir.FileNames());
    }

    [Fact]
    public void Stream_misuse_is_reported_and_harmless()
    {
        string path = _dir.File("misuse.safetensors");
        using var writer = SafetensorsWriter.Create(path, [("a", DType.I32, [2]), ("b", DType.I32, [1])]);
        Assert.Contains("expected tensor 'a' next (tensors are written in layout order), got 'b'",
            Assert.Throws<InvalidOperationException>(() => writer.Write("b", new byte[4])).Message, StringComparison.Ordinal);
        Assert.Contains("12 more bytes exceed its 8 bytes (0 already written)",
            Assert.Throws<ArgumentException>(() => writer.Write("a", new byte[12])).Message, StringComparison.Ordinal);
        writer.Write("a", new byte[4]);
        Assert.Contains("tensor 'a' is partly written (4 of 8 bytes); got 'b'",
            Assert.Throws<InvalidOperationException>(() => writer.Write("b", new byte[4])).Message, StringComparison.Ordinal);
        Assert.Contains("a Tensor can only be written whole",
            Assert.Throws<InvalidOperationException>(() => writer.Write("a", Tensor.Borrow(new FakeDevice(1), DType.I32, 64, 2))).Message, StringComparison.Ordinal);
        Assert.Contains("0 of 2 tensors are written; tensor 'a' is next (4 of 8 bytes written)",
            Assert.Throws<InvalidOperationException>(() => writer.Complete()).Message, StringComparison.Ordinal);
        writer.Write("a", new byte[4]);
        Assert.Contains("declared I32 [1] but got Tensor(F32, [1], fake)",
            Assert.Throws<ArgumentException>(() => writer.Write("b", Tensor.Borrow(new FakeDevice(1), DType.F32, 64, 1))).Message, StringComparison.Ordinal);
        writer.Write("b", new byte[4]);
        Assert.Contains("all 2 tensors are written",
            Assert.Throws<InvalidOperationException>(() => writer.Write("c", [])).Message, StringComparison.Ordinal);
        writer.Complete();
        Assert.Contains("already complete",
            Assert.Throws<InvalidOperationException>(() => writer.Write("a", [])).Message, StringComparison.Ordinal);
        Assert.Equal(["misuse.safetensors"], _dir.FileNames());
    }

    [Fact]
    public void Writes_after_a_failed_stream_are_refused()
    {
        string path = _dir.File("failed.safetensors");
        var writer = SafetensorsWriter.Create(path, [("a", DType.F32, [4])]);
        Assert.Throws<IOException>(() => writer.Write("a", Tensor.Borrow(new FakeDevice(0, new IOException("lost")), DType.F32, 64, 4)));
        // A failed write may have left part of a tensor in the file: the writer does not guess, it discards the file
        // and refuses to go on.
        Assert.Empty(_dir.FileNames());
        Assert.Contains("discarded", Assert.Throws<ObjectDisposedException>(() => writer.Write("a", new byte[16])).Message, StringComparison.Ordinal);
        Assert.Throws<ObjectDisposedException>(() => writer.Complete());
        writer.Dispose();
    }
}
