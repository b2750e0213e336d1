namespace BlockDance.Runtime;

/// <summary>Element types of tensors, named as in safetensors.</summary>
public enum DType : byte
{
    /// <summary>64-bit IEEE float.</summary>
    F64,
    /// <summary>32-bit IEEE float.</summary>
    F32,
    /// <summary>16-bit IEEE float (half).</summary>
    F16,
    /// <summary>bfloat16: the upper 16 bits of a float32.</summary>
    BF16,
    /// <summary>64-bit signed integer.</summary>
    I64,
    /// <summary>32-bit signed integer.</summary>
    I32,
    /// <summary>16-bit signed integer.</summary>
    I16,
    /// <summary>8-bit signed integer.</summary>
    I8,
    /// <summary>8-bit unsigned integer.</summary>
    U8,
    /// <summary>Boolean, one byte per element.</summary>
    Bool,
}

/// <summary>Sizes and names of <see cref="DType"/> values.</summary>
public static class DTypes
{
    /// <summary>Bytes per element.</summary>
    public static int SizeOf(this DType type) => type switch
    {
        DType.F64 or DType.I64 => 8,
        DType.F32 or DType.I32 => 4,
        DType.F16 or DType.BF16 or DType.I16 => 2,
        DType.I8 or DType.U8 or DType.Bool => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown dtype"),
    };

    /// <summary>The dtype's name in a safetensors header ("F32", "BF16", "BOOL", ...).</summary>
    public static string SafetensorsName(this DType type) => type switch
    {
        DType.Bool => "BOOL",
        _ => type.ToString(),
    };

    /// <summary>Parses a safetensors dtype name; false for names this project does not know (F8_E4M3, U16, ...).</summary>
    public static bool TryParseSafetensors(string name, out DType type)
    {
        switch (name)
        {
            case "F64": type = DType.F64; return true;
            case "F32": type = DType.F32; return true;
            case "F16": type = DType.F16; return true;
            case "BF16": type = DType.BF16; return true;
            case "I64": type = DType.I64; return true;
            case "I32": type = DType.I32; return true;
            case "I16": type = DType.I16; return true;
            case "I8": type = DType.I8; return true;
            case "U8": type = DType.U8; return true;
            case "BOOL": type = DType.Bool; return true;
            default: type = default; return false;
        }
    }

    /// <summary>True for the floating-point types (F64, F32, F16, BF16).</summary>
    public static bool IsFloat(this DType type) => type is DType.F64 or DType.F32 or DType.F16 or DType.BF16;

    /// <summary>Parses a user-facing dtype name: f32, f16, bf16 (case-insensitive).</summary>
    public static DType ParseActivationType(string name) => name.ToLowerInvariant() switch
    {
        "f32" or "fp32" or "float32" => DType.F32,
        "f16" or "fp16" or "float16" or "half" => DType.F16,
        "bf16" or "bfloat16" => DType.BF16,
        _ => throw new InvalidRequestException($"unknown dtype '{name}': expected f32, f16 or bf16", nameof(name)),
    };

    /// <summary>The lower-case short name used in kernel entry points and on the command line (f32, f16, bf16).</summary>
    public static string ShortName(this DType type) => type switch
    {
        DType.F32 => "f32",
        DType.F16 => "f16",
        DType.BF16 => "bf16",
        _ => type.SafetensorsName().ToLowerInvariant(),
    };
}
