using BlockDance.Runtime;
using BlockDance.Runtime.Safetensors;
using Xunit;

namespace BlockDance.Tests.Safetensors;

/// <summary>Every way a hostile or broken file can be wrong gets its own, specific <see cref="SafetensorsException"/>.</summary>
public sealed class SafetensorsMalformedTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>Opens the file, expects a <see cref="SafetensorsException"/> and checks what it says.</summary>
    private SafetensorsException Rejected(byte[] file, string? tensor, string expected)
    {
        string path = _dir.Write("model.safetensors", file);
        var e = Assert.Throws<SafetensorsException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.Equal(path, e.FilePath);
        Assert.Equal(tensor, e.TensorName);
        Assert.StartsWith(path + ": ", e.Message, StringComparison.Ordinal);
        if (tensor is not null && tensor.Length < 100 && !tensor.Any(char.IsControl))
            Assert.Contains($"tensor '{tensor}': ", e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        return e;
    }

    [Fact]
    public void Empty_file() => Rejected([], null, "file has 0 bytes, fewer than the 8-byte header length");

    [Fact]
    public void File_shorter_than_the_length_prefix() => Rejected([2, 0, 0, 0, 0], null, "file has 5 bytes, fewer than the 8-byte");

    [Fact]
    public void Header_length_of_2_to_60_fails_fast_without_allocating()
    {
        string path = _dir.Write("huge.safetensors", HandMade.File("{}", [], claimedHeaderLength: 1UL << 60));
        Assert.Throws<SafetensorsException>(() => SafetensorsFile.Open(path)); // warm-up: JIT and first-use costs are not measured
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<SafetensorsException>(() => SafetensorsFile.Open(path));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Contains("header length is 1152921504606846976 bytes, more than the 100000000-byte limit", e.Message, StringComparison.Ordinal);
        Assert.True(allocated < 1 << 20, $"rejecting the header allocated {allocated} bytes");
    }

    [Fact]
    public void Header_length_just_over_the_limit() =>
        Rejected(HandMade.File("{}", [], claimedHeaderLength: 100_000_001), null, "more than the 100000000-byte limit");

    [Fact]
    public void Header_length_of_all_ones() =>
        Rejected(HandMade.File("{}", [], claimedHeaderLength: ulong.MaxValue), null, $"header length is {ulong.MaxValue} bytes");

    [Fact]
    public void Header_length_beyond_the_end_of_the_file() =>
        Rejected(HandMade.File("{}", [], claimedHeaderLength: 1000), null, "header length is 1000 bytes but the file has only 2 bytes after");

    [Fact]
    public void File_truncated_in_the_header()
    {
        byte[] whole = HandMade.File("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", new byte[8]);
        Rejected(whole[..30], null, "but the file has only 22 bytes after the 8-byte length (the file is truncated");
    }

    [Fact]
    public void File_truncated_in_the_data_section()
    {
        byte[] whole = new SafetensorsWriter()
            .Add("first", new float[] { 1, 2 }, [2])
            .Add("blocks.0.attn.qkv.weight", new float[12], [3, 4])
            .ToArray();
        var e = Rejected(whole[..^5], "blocks.0.attn.qkv.weight", "data_offsets [8, 56] reach past the end of the 51-byte data section (the file is truncated");
        Assert.Contains("blocks.0.attn.qkv.weight", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Header_that_is_not_Utf8()
    {
        byte[] header = [.. "{\"a"u8, 0xFF, .. "\":1}"u8];
        Rejected(HandMade.File(header, []), null, "header is not valid UTF-8 (invalid sequence at header byte 3)");
    }

    [Fact]
    public void Header_with_an_overlong_Utf8_encoding()
    {
        // 0xC0 0xAF is an overlong '/', which a lenient decoder would accept.
        byte[] header = [.. "{\""u8, 0xC0, 0xAF, .. "\":null}"u8];
        Rejected(HandMade.File(header, []), null, "header is not valid UTF-8 (invalid sequence at header byte 2)");
    }

    [Fact]
    public void Escaped_lone_surrogate_in_a_name() =>
        Rejected(HandMade.File("""{"\ud800":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}""", []), null, "not valid Unicode");

    [Fact]
    public void Nesting_too_deep()
    {
        string deep = new string('[', 100) + new string(']', 100);
        Rejected(HandMade.File($$$"""{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0],"x":{{{deep}}}}}""", []), null, "header is not valid JSON");
    }

    [Theory]
    // Not JSON, or not an object.
    [InlineData("", 0, null, "header is empty: expected a JSON object")]
    [InlineData("        ", 0, null, "header is empty: expected a JSON object")]
    [InlineData("""{"a":""", 0, null, "header is not valid JSON: ")]
    [InlineData("""{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},}""", 0, null, "header is not valid JSON: ")]
    [InlineData("{} {}", 0, null, "header is not valid JSON: ")]
    [InlineData("{}\0\0\0", 0, null, "header is not valid JSON: ")]
    [InlineData("{} // comment", 0, null, "header is not valid JSON: ")]
    [InlineData("[1, 2]", 0, null, "header is an array, expected a JSON object")]
    [InlineData("\"a\"", 0, null, "header is a string, expected a JSON object")]
    [InlineData("null", 0, null, "header is null, expected a JSON object")]
    // Entries of the wrong shape or JSON types.
    [InlineData("""{"a":5}""", 0, "a", "entry is a number, expected an object with dtype, shape and data_offsets")]
    [InlineData("""{"a":[]}""", 0, "a", "entry is an array, expected an object")]
    [InlineData("""{"a":{"shape":[1],"data_offsets":[0,4]}}""", 4, "a", "entry lacks dtype (each tensor needs dtype, shape and data_offsets)")]
    [InlineData("""{"a":{"dtype":"F32","data_offsets":[0,4]}}""", 4, "a", "entry lacks shape")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1]}}""", 4, "a", "entry lacks data_offsets")]
    [InlineData("""{"a":{}}""", 0, "a", "entry lacks dtype, shape, data_offsets")]
    [InlineData("""{"a":{"dtype":5,"shape":[1],"data_offsets":[0,4]}}""", 4, "a", "'dtype' is a number, expected a string")]
    [InlineData("""{"a":{"dtype":null,"shape":[1],"data_offsets":[0,4]}}""", 4, "a", "'dtype' is null, expected a string")]
    [InlineData("""{"a":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}""", 4, "a", "'shape' is a string, expected an array of non-negative integers")]
    [InlineData("""{"a":{"dtype":"F32","shape":{},"data_offsets":[0,4]}}""", 4, "a", "'shape' is an object, expected an array")]
    [InlineData("""{"a":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}}""", 4, "a", "'shape' dimension 0 is a string, expected a non-negative integer")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1,[2]],"data_offsets":[0,4]}}""", 4, "a", "'shape' dimension 1 is an array")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":4}}""", 4, "a", "'data_offsets' is a number, expected an array")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,true]}}""", 4, "a", "'data_offsets' element 1 is a boolean")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[4]}}""", 4, "a", "'data_offsets' has 1 elements, expected two: [begin, end]")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}""", 8, "a", "'data_offsets' has 3 elements")]
    [InlineData("""{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 4, "a", "'dtype' appears twice")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"shape":[1],"data_offsets":[0,4]}}""", 4, "a", "'shape' appears twice")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"data_offsets":[0,4]}}""", 4, "a", "'data_offsets' appears twice")]
    // Unknown dtypes.
    [InlineData("""{"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}""", 1, "a", "unknown dtype 'F8_E4M3' (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)")]
    [InlineData("""{"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}""", 4, "a", "unknown dtype 'f32'")]
    [InlineData("""{"a":{"dtype":"U16","shape":[1],"data_offsets":[0,2]}}""", 2, "a", "unknown dtype 'U16'")]
    // Bad dimensions and sizes.
    [InlineData("""{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""", 4, "a", "'shape' dimension 0 is -1, expected a non-negative integer")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2,2.5],"data_offsets":[0,4]}}""", 4, "a", "'shape' dimension 1 is 2.5, not an integer")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1e3],"data_offsets":[0,4]}}""", 4, "a", "'shape' dimension 0 is 1e3, not an integer")]
    [InlineData("""{"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}}""", 4, "a", "'shape' dimension 0 is 99999999999999999999, too large")]
    [InlineData("""{"a":{"dtype":"F32","shape":[3000000000],"data_offsets":[0,4]}}""", 4, "a", "'shape' dimension 0 is 3000000000, larger than 2147483647")]
    [InlineData("""{"a":{"dtype":"U8","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,4]}}""", 4, "a", "shape [2147483647, 2147483647, 2147483647] has more elements than a 64-bit count holds")]
    [InlineData("""{"a":{"dtype":"F64","shape":[2147483647,2147483647,2],"data_offsets":[0,4]}}""", 4, "a", "shape [2147483647, 2147483647, 2] × F64 overflows a 64-bit byte count")]
    [InlineData("""{"blocks.0.attn.qkv.weight":{"dtype":"F32","shape":[2304,768],"data_offsets":[0,7077884]}}""", 7077884, "blocks.0.attn.qkv.weight", "shape [2304, 768] × F32 = 7077888 bytes but data_offsets span 7077884 bytes")]
    [InlineData("""{"a":{"dtype":"BF16","shape":[],"data_offsets":[0,4]}}""", 4, "a", "shape [] × BF16 = 2 bytes but data_offsets span 4 bytes")]
    [InlineData("""{"a":{"dtype":"F32","shape":[0,5],"data_offsets":[0,4]}}""", 4, "a", "shape [0, 5] × F32 = 0 bytes but data_offsets span 4 bytes")]
    // Offsets outside the data section, reversed, overlapping, with holes; trailing bytes.
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}""", 4, "a", "'data_offsets' element 0 is -4, expected a non-negative integer")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0.0,4]}}""", 4, "a", "'data_offsets' element 0 is 0.0, not an integer")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}""", 8, "a", "data_offsets [8, 4] end before they begin")]
    [InlineData("""{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", 8, "a", "data_offsets [0, 16] reach past the end of the 8-byte data section")]
    [InlineData("""{"a":{"dtype":"U8","shape":[1],"data_offsets":[9223372036854775806,9223372036854775807]}}""", 8, "a", "data_offsets [9223372036854775806, 9223372036854775807] reach past the end")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, "a", "data_offsets [4, 8] leave a hole of 4 bytes at the start of the data section")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}""", 12, "b", "data_offsets [8, 12] leave a hole of 4 bytes after tensor 'a', which ends at 4")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12, "b", "data_offsets [4, 12] overlap tensor 'a' at [0, 8]")]
    [InlineData("""{"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 12, "b", "data_offsets [4, 12] overlap tensor 'a' at [0, 8]")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 8, "b", "overlap tensor 'a' at [0, 8]")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}""", 8, "z", "data_offsets [4, 4] overlap tensor 'a' at [0, 8]")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 12, null, "the data section has 12 bytes but the tensors end at 4: 8 trailing bytes")]
    [InlineData("{}", 3, null, "the data section has 3 bytes but the tensors end at 0: 3 trailing bytes")]
    // Repeated names.
    [InlineData("""{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}""", 2, "a", "the name appears twice in the header")]
    [InlineData("""{"__metadata__":{},"__metadata__":{}}""", 0, null, "'__metadata__' appears twice in the header")]
    // Bad metadata.
    [InlineData("""{"__metadata__":[1]}""", 0, null, "'__metadata__' is an array, expected an object mapping strings to strings")]
    [InlineData("""{"__metadata__":"x"}""", 0, null, "'__metadata__' is a string, expected an object")]
    [InlineData("""{"__metadata__":{"k":1}}""", 0, null, "'__metadata__' maps 'k' to a number; metadata values must be strings")]
    [InlineData("""{"__metadata__":{"k":{"nested":"x"}}}""", 0, null, "'__metadata__' maps 'k' to an object")]
    [InlineData("""{"__metadata__":{"k":null}}""", 0, null, "'__metadata__' maps 'k' to null")]
    [InlineData("""{"__metadata__":{"k":"1","k":"2"}}""", 0, null, "'__metadata__' has the key 'k' twice")]
    public void Malformed_header_is_refused_naming_the_problem(string header, int dataLength, string? tensor, string expected) =>
        Rejected(HandMade.File(header, new byte[dataLength]), tensor, expected);

    [Fact]
    public void Huge_names_are_shortened_in_messages()
    {
        string name = new('n', 100_000);
        var e = Rejected(HandMade.File($$$"""{"{{{name}}}":{"dtype":"F32","shape":[1],"data_offsets":[0,3]}}""", new byte[3]), name, "× F32 = 4 bytes");
        Assert.True(e.Message.Length < 1000, $"message of {e.Message.Length} characters");
        Assert.Contains("(100000 characters)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Control_characters_in_names_are_escaped_in_messages()
    {
        var e = Rejected(HandMade.File("""{"a\nb":{"dtype":"F32","shape":[1],"data_offsets":[0,3]}}""", new byte[3]), "a\nb", "× F32");
        Assert.Contains("tensor 'a\\u000ab'", e.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// Random damage to a valid file (flipped bytes, truncation) must end in a valid file or a <see cref="SafetensorsException"/>,
    /// never in another exception, a crash or a hang.
    /// </summary>
    private const string Structural = "{}[]\",:0123456789-.e";

    [Fact]
    public void Random_damage_only_ever_raises_safetensors_exception()
    {
        byte[] valid = new SafetensorsWriter()
            .SetMetadata("format", "pt")
            .Add("a", new float[] { 1, 2, 3, 4, 5, 6 }, [2, 3])
            .Add("b", new long[] { 7, 8 }, [2])
            .Add("c", DType.BF16, [], new byte[2])
            .ToArray();
        var random = new Random(1234);
        string path = _dir.File("fuzz.safetensors");
        int accepted = 0, rejected = 0;
        for (int trial = 0; trial < 3000; trial++)
        {
            byte[] bytes = (byte[])valid.Clone();
            if (trial < valid.Length)
            {
                bytes = bytes[..trial]; // every truncation
            }
            else
            {
                int flips = random.Next(1, 4);
                for (int f = 0; f < flips; f++)
                {
                    // Mostly the header (where the structure is), sometimes the length prefix.
                    int at = random.Next(0, 16) == 0 ? random.Next(0, 8) : random.Next(8, valid.Length - 32);
                    bytes[at] = random.Next(3) switch
                    {
                        0 => (byte)random.Next(256),
                        1 => (byte)Structural[random.Next(Structural.Length)],
                        _ => (byte)(bytes[at] ^ (1 << random.Next(8))),
                    };
                }
            }
            File.WriteAllBytes(path, bytes);
            try
            {
                using var file = SafetensorsFile.Open(path);
                foreach (var t in file.Tensors)
                    _ = file.GetBytes(t.Name).Length;
                accepted++;
            }
            catch (SafetensorsException)
            {
                rejected++;
            }
        }
        Assert.True(rejected > 2000, $"{accepted} accepted, {rejected} rejected");
    }

    [Fact]
    public void Missing_file_or_folder_is_a_safetensors_exception_naming_the_path()
    {
        // Issue 11: every library error is a BlockDanceException (a SafetensorsException, no longer an IOException),
        // and a folder is named as such rather than "Access to the path is denied".
        string absent = _dir.File("absent.safetensors");
        var e = Assert.Throws<SafetensorsException>(() => SafetensorsFile.Open(absent));
        Assert.Equal($"no such file: {absent}", e.Message);
        string folder = _dir.File("folder.safetensors");
        Directory.CreateDirectory(folder);
        e = Assert.Throws<SafetensorsException>(() => SafetensorsFile.Open(folder));
        Assert.Equal($"{folder} is a folder, not a file", e.Message);
    }

    [Fact]
    public void Message_names_the_file_as_given()
    {
        var e = new SafetensorsException("model.safetensors", "blocks.0.attn.qkv.weight",
            "shape [2304, 768] × F32 = 7077888 bytes but data_offsets span 7077884 bytes");
        Assert.Equal(
            "model.safetensors: tensor 'blocks.0.attn.qkv.weight': shape [2304, 768] × F32 = 7077888 bytes but data_offsets span 7077884 bytes",
            e.Message);
        Assert.Equal("model.safetensors: header is empty", new SafetensorsException("model.safetensors", null, "header is empty").Message);
        // Issue 11: the common base of every library error, no longer IOException.
        Assert.True(typeof(BlockDance.Runtime.BlockDanceException).IsAssignableFrom(typeof(SafetensorsException)));
    }
}
