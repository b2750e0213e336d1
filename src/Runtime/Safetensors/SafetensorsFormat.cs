using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace BlockDance.Runtime.Safetensors;

/// <summary>
/// Facts about the safetensors format shared by the reader and the writers, and the header serializer.
/// The format (https://github.com/huggingface/safetensors#format): an unsigned 64-bit little-endian header length N,
/// N bytes of UTF-8 JSON (<c>{"__metadata__": {str: str}, "name": {"dtype": "F32", "shape": [..],
/// "data_offsets": [begin, end]}, ...}</c>), then the data section that the offsets index into.
/// </summary>
internal static class SafetensorsFormat
{
    /// <summary>
    /// The largest header the reader accepts and the writers produce: 100 MB, the limit of the reference implementation
    /// (<c>MAX_HEADER_SIZE</c> in huggingface/safetensors). A header length above it is rejected before anything is
    /// allocated, however large the file.
    /// </summary>
    public const long MaxHeaderLength = 100_000_000;

    /// <summary>The header key that holds the string-to-string metadata instead of a tensor.</summary>
    public const string MetadataKey = "__metadata__";

    /// <summary>Headers are padded with spaces so that the data section starts at a multiple of this.</summary>
    public const int HeaderAlignment = 8;

    /// <summary>The accepted dtype names, for messages.</summary>
    internal const string SupportedDTypes = "F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL";

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>A name quoted for an error message: control characters escaped, very long names shortened.</summary>
    internal static string Quote(string name)
    {
        const int MaxShown = 200;
        var sb = new StringBuilder(Math.Min(name.Length, MaxShown) + 2).Append('\'');
        for (int i = 0; i < name.Length && i < MaxShown; i++)
        {
            char c = name[i];
            if (char.IsControl(c))
                sb.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}");
            else
                sb.Append(c);
        }
        if (name.Length > MaxShown)
            sb.Append(CultureInfo.InvariantCulture, $"... ({name.Length} characters)");
        return sb.Append('\'').ToString();
    }

    /// <summary>
    /// Serializes a header exactly as the reference implementation does: compact JSON, metadata first (omitted when
    /// empty), then the tensors in the given order with back-to-back offsets; strings escaped as serde_json escapes them
    /// (only <c>"</c>, <c>\</c> and control characters; other characters as raw UTF-8); padded with spaces to a multiple
    /// of 8. Returns the 8-byte length prefix followed by the padded header, and the size of the data section.
    /// </summary>
    /// <exception cref="ArgumentException">A name is null, empty of meaning (<c>__metadata__</c>), repeated or not valid
    /// UTF-16; a shape has a negative dimension; the sizes overflow; or the header exceeds <see cref="MaxHeaderLength"/>.</exception>
    internal static byte[] BuildHeader(
        IReadOnlyList<(string Name, DType DType, int[] Shape)> layout,
        IEnumerable<KeyValuePair<string, string>> metadata,
        out long[] byteLengths,
        out long dataLength)
    {
        var json = new StringBuilder("{");
        bool first = true;
        var metadataEntries = metadata.ToList();
        if (metadataEntries.Count > 0)
        {
            json.Append('"').Append(MetadataKey).Append("\":{");
            var keys = new HashSet<string>(StringComparer.Ordinal);
            for (int i = 0; i < metadataEntries.Count; i++)
            {
                var (key, value) = metadataEntries[i];
                CheckString(key, "metadata key");
                CheckString(value, $"metadata value of {Quote(key)}");
                if (!keys.Add(key))
                    throw new ArgumentException($"metadata key {Quote(key)} appears twice");
                if (i > 0)
                    json.Append(',');
                AppendString(json, key).Append(':');
                AppendString(json, value);
            }
            json.Append('}');
            first = false;
        }

        byteLengths = new long[layout.Count];
        var names = new HashSet<string>(StringComparer.Ordinal);
        long offset = 0;
        for (int i = 0; i < layout.Count; i++)
        {
            var (name, type, shape) = layout[i];
            CheckString(name, "tensor name");
            if (name == MetadataKey)
                throw new ArgumentException($"'{MetadataKey}' is reserved for metadata and cannot name a tensor");
            if (!names.Add(name))
                throw new ArgumentException($"tensor {Quote(name)} appears twice");
            long bytes = ByteLength(name, type, shape);
            byteLengths[i] = bytes;
            long end = offset + bytes; // both are non-negative, so an overflow shows as a negative sum
            if (end < 0)
                throw new ArgumentException($"tensor {Quote(name)}: the data section would exceed {long.MaxValue} bytes");

            if (!first)
                json.Append(',');
            first = false;
            AppendString(json, name).Append(":{\"dtype\":\"").Append(type.SafetensorsName()).Append("\",\"shape\":[");
            for (int d = 0; d < shape.Length; d++)
            {
                if (d > 0)
                    json.Append(',');
                json.Append(shape[d].ToString(CultureInfo.InvariantCulture));
            }
            json.Append("],\"data_offsets\":[")
                .Append(offset.ToString(CultureInfo.InvariantCulture)).Append(',')
                .Append(end.ToString(CultureInfo.InvariantCulture)).Append("]}");
            offset = end;
        }
        json.Append('}');
        dataLength = offset;

        string text = json.ToString();
        int jsonBytes = StrictUtf8.GetByteCount(text);
        int padded = checked((jsonBytes + HeaderAlignment - 1) / HeaderAlignment * HeaderAlignment);
        if (padded > MaxHeaderLength)
            throw new ArgumentException(
                $"the header would be {padded} bytes, more than the {MaxHeaderLength}-byte limit readers enforce");
        var result = new byte[8 + padded];
        BinaryPrimitives.WriteUInt64LittleEndian(result, (ulong)padded);
        StrictUtf8.GetBytes(text, result.AsSpan(8));
        result.AsSpan(8 + jsonBytes).Fill((byte)' ');
        return result;
    }

    /// <summary>Elements × element size, checked; the shape must have no negative dimension.</summary>
    internal static long ByteLength(string name, DType type, int[] shape)
    {
        if (shape is null)
            throw new ArgumentException($"tensor {Quote(name)}: shape is null");
        foreach (int d in shape)
            if (d < 0)
                throw new ArgumentException($"tensor {Quote(name)}: negative dimension in shape {ShapeUtil.Format(shape)}");
        try
        {
            return checked(ShapeUtil.Count(shape) * type.SizeOf());
        }
        catch (OverflowException e)
        {
            throw new ArgumentException(
                $"tensor {Quote(name)}: shape {ShapeUtil.Format(shape)} × {type.SafetensorsName()} overflows a 64-bit byte count", e);
        }
    }

    private static void CheckString(string? s, string what)
    {
        if (s is null)
            throw new ArgumentException($"{what} is null");
        try
        {
            StrictUtf8.GetByteCount(s);
        }
        catch (EncoderFallbackException e)
        {
            throw new ArgumentException($"{what} {Quote(s)} is not valid UTF-16 (a lone surrogate)", e);
        }
    }

    /// <summary>Appends a JSON string literal with the escapes serde_json uses.</summary>
    private static StringBuilder AppendString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case < ' ': sb.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}"); break;
                default: sb.Append(c); break;
            }
        }
        return sb.Append('"');
    }
}
