using System.Buffers;
using System.Collections.ObjectModel;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace BlockDance.Runtime.Safetensors;

/// <summary>
/// Parses and validates a safetensors JSON header with <see cref="Utf8JsonReader"/> (which, unlike a DOM or
/// <c>JsonSerializer</c>, lets us see repeated keys). Every problem becomes a <see cref="SafetensorsException"/> naming
/// the file and the tensor. The rules, and where they differ from the reference implementation:
/// <list type="bullet">
/// <item>The header is UTF-8 JSON holding one object; whitespace around it (the writers' space padding) is allowed.</item>
/// <item>Each key other than <c>__metadata__</c> is a tensor whose value is an object with <c>dtype</c> (a string, one of
/// the dtypes <see cref="DTypes.TryParseSafetensors"/> knows), <c>shape</c> (an array of integers in [0, 2^31)) and
/// <c>data_offsets</c> (an array of two integers, begin ≤ end). Other keys in the entry are ignored, as the reference
/// ignores them.</item>
/// <item>No key appears twice, at any level (the reference keeps the last one silently; we refuse).</item>
/// <item><c>__metadata__</c> is an object whose values are all strings, or <c>null</c> (read as empty, as the reference
/// reads it).</item>
/// <item>The element count and byte count are computed with overflow checks, and the byte count equals end − begin.</item>
/// <item>Sorted by offset, the tensors tile the data section exactly: the first begins at 0, each begins where the
/// previous ends (no holes, no overlaps), the last ends at the end of the file (no trailing bytes). This is the
/// reference's rule (its <c>InvalidOffset</c> and <c>MetadataIncompleteBuffer</c> errors). As in the reference, the
/// header order need not be the offset order.</item>
/// </list>
/// The reference is huggingface/safetensors, <c>safetensors/src/tensor.rs</c>: <c>SafeTensors::read_metadata</c>,
/// <c>Metadata::validate</c> and the sort by offsets in <c>Metadata</c>'s deserializer.
/// </summary>
internal static class SafetensorsHeaderParser
{
    private const int MaxShownNumberLength = 40;

    public static (List<SafetensorsTensorInfo> Tensors, IReadOnlyDictionary<string, string> Metadata) Parse(
        string path, ReadOnlySpan<byte> header, long dataStart, long dataLength)
    {
        if (!Utf8.IsValid(header))
            throw Fail(path, null, $"header is not valid UTF-8 (invalid sequence at header byte {FirstInvalidUtf8(header)})");
        if (header.TrimStart(" \t\r\n"u8).IsEmpty)
            throw Fail(path, null, "header is empty: expected a JSON object");

        var tensors = new List<SafetensorsTensorInfo>();
        var metadata = new OrderedDictionary<string, string>(StringComparer.Ordinal);
        var keys = new HashSet<string>(StringComparer.Ordinal);
        var reader = new Utf8JsonReader(header, new JsonReaderOptions { MaxDepth = 64 });
        try
        {
            Next(ref reader, path);
            if (reader.TokenType != JsonTokenType.StartObject)
                throw Fail(path, null, $"header is {Describe(reader.TokenType)}, expected a JSON object");
            while (Next(ref reader, path) == JsonTokenType.PropertyName)
            {
                string key = reader.GetString()!;
                bool isMetadata = key == SafetensorsFormat.MetadataKey;
                if (!keys.Add(key))
                    throw isMetadata
                        ? Fail(path, null, $"'{SafetensorsFormat.MetadataKey}' appears twice in the header")
                        : Fail(path, key, "the name appears twice in the header");
                Next(ref reader, path);
                if (isMetadata)
                    ReadMetadata(ref reader, path, metadata);
                else
                    tensors.Add(ReadTensor(ref reader, path, key, dataStart, dataLength));
            }
            // The object is closed; Read() throws on anything but whitespace after it.
            if (reader.Read())
                throw Fail(path, null, "header has more JSON after its object");
        }
        catch (JsonException e)
        {
            throw Fail(path, null, $"header is not valid JSON: {e.Message}", e);
        }
        catch (InvalidOperationException e)
        {
            // GetString() on an escaped lone surrogate ("\ud800") cannot produce a valid string.
            throw Fail(path, null, $"header has a string that is not valid Unicode: {e.Message}", e);
        }

        CheckTiling(path, tensors, dataLength);
        return (tensors, new ReadOnlyDictionary<string, string>(metadata));
    }

    private static JsonTokenType Next(ref Utf8JsonReader reader, string path)
    {
        // With the whole header as the final block, Read() throws on malformed or unfinished JSON instead of returning
        // false; this is a second line of defence.
        if (!reader.Read())
            throw Fail(path, null, "header JSON ends early");
        return reader.TokenType;
    }

    private static void ReadMetadata(ref Utf8JsonReader reader, string path, OrderedDictionary<string, string> metadata)
    {
        const string Key = SafetensorsFormat.MetadataKey;
        if (reader.TokenType == JsonTokenType.Null)
            return;
        if (reader.TokenType != JsonTokenType.StartObject)
            throw Fail(path, null, $"'{Key}' is {Describe(reader.TokenType)}, expected an object mapping strings to strings");
        while (Next(ref reader, path) == JsonTokenType.PropertyName)
        {
            string key = reader.GetString()!;
            if (metadata.ContainsKey(key))
                throw Fail(path, null, $"'{Key}' has the key {SafetensorsFormat.Quote(key)} twice");
            if (Next(ref reader, path) != JsonTokenType.String)
                throw Fail(path, null,
                    $"'{Key}' maps {SafetensorsFormat.Quote(key)} to {Describe(reader.TokenType)}; metadata values must be strings");
            metadata.Add(key, reader.GetString()!);
        }
    }

    private static SafetensorsTensorInfo ReadTensor(ref Utf8JsonReader reader, string path, string name, long dataStart, long dataLength)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
            throw Fail(path, name, $"entry is {Describe(reader.TokenType)}, expected an object with dtype, shape and data_offsets");

        string? dtypeName = null;
        List<long>? shape = null, offsets = null;
        while (Next(ref reader, path) == JsonTokenType.PropertyName)
        {
            string key = reader.GetString()!;
            Next(ref reader, path);
            switch (key)
            {
                case "dtype":
                    if (dtypeName is not null)
                        throw Fail(path, name, "'dtype' appears twice");
                    if (reader.TokenType != JsonTokenType.String)
                        throw Fail(path, name, $"'dtype' is {Describe(reader.TokenType)}, expected a string such as \"F32\"");
                    dtypeName = reader.GetString()!;
                    break;
                case "shape":
                    if (shape is not null)
                        throw Fail(path, name, "'shape' appears twice");
                    shape = ReadIntegers(ref reader, path, name, "shape", "dimension");
                    break;
                case "data_offsets":
                    if (offsets is not null)
                        throw Fail(path, name, "'data_offsets' appears twice");
                    offsets = ReadIntegers(ref reader, path, name, "data_offsets", "element");
                    break;
                default:
                    reader.Skip(); // unknown keys are ignored, as the reference implementation ignores them
                    break;
            }
        }

        if (dtypeName is null || shape is null || offsets is null)
        {
            string missing = string.Join(", ",
                new[] { dtypeName is null ? "dtype" : null, shape is null ? "shape" : null, offsets is null ? "data_offsets" : null }
                    .Where(m => m is not null));
            throw Fail(path, name, $"entry lacks {missing} (each tensor needs dtype, shape and data_offsets)");
        }
        return Validate(path, name, dtypeName, shape, offsets, dataStart, dataLength);
    }

    /// <summary>Reads an array of non-negative integers that fit in a long; anything else is an error.</summary>
    private static List<long> ReadIntegers(ref Utf8JsonReader reader, string path, string name, string field, string element)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
            throw Fail(path, name, $"'{field}' is {Describe(reader.TokenType)}, expected an array of non-negative integers");
        var values = new List<long>();
        while (Next(ref reader, path) != JsonTokenType.EndArray)
        {
            int index = values.Count;
            if (reader.TokenType != JsonTokenType.Number)
                throw Fail(path, name, $"'{field}' {element} {index} is {Describe(reader.TokenType)}, expected a non-negative integer");
            if (!reader.TryGetInt64(out long value))
            {
                string text = NumberText(reader.ValueSpan);
                bool integral = !reader.ValueSpan.ContainsAny(".eE"u8);
                throw Fail(path, name, integral
                    ? $"'{field}' {element} {index} is {text}, too large"
                    : $"'{field}' {element} {index} is {text}, not an integer");
            }
            if (value < 0)
                throw Fail(path, name, $"'{field}' {element} {index} is {value}, expected a non-negative integer");
            values.Add(value);
        }
        return values;
    }

    private static SafetensorsTensorInfo Validate(
        string path, string name, string dtypeName, List<long> shapeValues, List<long> offsets, long dataStart, long dataLength)
    {
        if (!DTypes.TryParseSafetensors(dtypeName, out DType type))
            throw Fail(path, name,
                $"unknown dtype {SafetensorsFormat.Quote(dtypeName)} (supported: {SafetensorsFormat.SupportedDTypes})");

        var shape = new int[shapeValues.Count];
        for (int i = 0; i < shape.Length; i++)
        {
            if (shapeValues[i] > int.MaxValue)
                throw Fail(path, name,
                    $"'shape' dimension {i} is {shapeValues[i]}, larger than {int.MaxValue} (the largest dimension a Tensor holds)");
            shape[i] = (int)shapeValues[i];
        }

        if (offsets.Count != 2)
            throw Fail(path, name, $"'data_offsets' has {offsets.Count} elements, expected two: [begin, end]");
        long begin = offsets[0], end = offsets[1];
        if (end < begin)
            throw Fail(path, name, $"data_offsets [{begin}, {end}] end before they begin");

        string shapeText = ShapeUtil.Format(shape);
        long count;
        try
        {
            count = ShapeUtil.Count(shape);
        }
        catch (OverflowException)
        {
            throw Fail(path, name, $"shape {shapeText} has more elements than a 64-bit count holds");
        }
        long bytes;
        try
        {
            bytes = checked(count * type.SizeOf());
        }
        catch (OverflowException)
        {
            throw Fail(path, name, $"shape {shapeText} × {dtypeName} overflows a 64-bit byte count");
        }
        if (bytes != end - begin)
            throw Fail(path, name, $"shape {shapeText} × {dtypeName} = {bytes} bytes but data_offsets span {end - begin} bytes");
        if (end > dataLength)
            throw Fail(path, name,
                $"data_offsets [{begin}, {end}] reach past the end of the {dataLength}-byte data section (the file is truncated or the offsets are wrong)");

        return new SafetensorsTensorInfo(name, type, shape, count, begin, end, dataStart + begin);
    }

    /// <summary>Checks that the tensors, sorted by offset, cover the data section exactly once.</summary>
    private static void CheckTiling(string path, List<SafetensorsTensorInfo> tensors, long dataLength)
    {
        long position = 0;
        SafetensorsTensorInfo? previous = null;
        foreach (var t in tensors.OrderBy(t => t.DataBegin).ThenBy(t => t.DataEnd))
        {
            if (t.DataBegin < position)
                throw Fail(path, t.Name,
                    $"data_offsets [{t.DataBegin}, {t.DataEnd}] overlap tensor {SafetensorsFormat.Quote(previous!.Name)} at [{previous.DataBegin}, {previous.DataEnd}]");
            if (t.DataBegin > position)
                throw Fail(path, t.Name, previous is null
                    ? $"data_offsets [{t.DataBegin}, {t.DataEnd}] leave a hole of {t.DataBegin} bytes at the start of the data section (tensors must be packed without holes)"
                    : $"data_offsets [{t.DataBegin}, {t.DataEnd}] leave a hole of {t.DataBegin - position} bytes after tensor {SafetensorsFormat.Quote(previous.Name)}, which ends at {position} (tensors must be packed without holes)");
            position = t.DataEnd;
            previous = t;
        }
        if (position != dataLength)
            throw Fail(path, null,
                $"the data section has {dataLength} bytes but the tensors end at {position}: {dataLength - position} trailing bytes (tensors must fill the data section exactly)");
    }

    private static SafetensorsException Fail(string path, string? tensor, string problem, Exception? inner = null) =>
        new(path, tensor, problem, inner);

    private static string Describe(JsonTokenType token) => token switch
    {
        JsonTokenType.StartObject => "an object",
        JsonTokenType.StartArray => "an array",
        JsonTokenType.String => "a string",
        JsonTokenType.Number => "a number",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        JsonTokenType.Null => "null",
        _ => token.ToString(),
    };

    private static string NumberText(ReadOnlySpan<byte> raw) =>
        raw.Length <= MaxShownNumberLength
            ? Encoding.UTF8.GetString(raw)
            : string.Create(CultureInfo.InvariantCulture, $"{Encoding.UTF8.GetString(raw[..MaxShownNumberLength])}... ({raw.Length} characters)");

    private static int FirstInvalidUtf8(ReadOnlySpan<byte> bytes)
    {
        int position = 0;
        while (position < bytes.Length)
        {
            if (Rune.DecodeFromUtf8(bytes[position..], out _, out int consumed) != OperationStatus.Done)
                return position;
            position += consumed;
        }
        return position;
    }
}
