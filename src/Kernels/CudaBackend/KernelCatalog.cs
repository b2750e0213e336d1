using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using BlockDance.Runtime;

namespace BlockDance.Kernels.Cuda;

/// <summary>One kernel source file of <c>src/Kernels/cuda/</c>, i.e. one CUDA module and one op family
/// (<c>CudaOps.{Module}.cs</c> holds its launches).</summary>
internal enum KernelModule
{
    /// <summary>linear.cu: bias + activation epilogue.</summary>
    Linear,
    /// <summary>elementwise.cu: silu, add.</summary>
    Elementwise,
    /// <summary>adaln.cu: layernorm_modulate, gated_residual_add.</summary>
    AdaLN,
    /// <summary>softmax.cu: attention softmax.</summary>
    Softmax,
    /// <summary>patch.cu: patchify, unpatchify.</summary>
    Patch,
    /// <summary>embedding.cu: add_position_embedding, timestep_embedding, embedding_lookup.</summary>
    Embedding,
    /// <summary>sampling.cu: guidance_combine, ddim_step, ancestral_step.</summary>
    Sampling,
    /// <summary>random.cu: random_normal.</summary>
    Random,
    /// <summary>rearrange.cu: swap_frame_token_axes (Latte).</summary>
    Rearrange,
    /// <summary>indicator.cu: relative_l1 (the adaptive cache policies' indicator).</summary>
    Indicator,
}

/// <summary>
/// Declares a kernel family on the struct that holds its arguments: the kernel <c>{Op}_{f32|f16|bf16}</c> of
/// <c>{module}.cu</c> takes exactly the struct's fields, in order. The struct is the one list entry of the kernel: the
/// catalog, the launch and the emulator's signature check all derive from it.
/// </summary>
[AttributeUsage(AttributeTargets.Struct, AllowMultiple = false, Inherited = false)]
internal sealed class KernelAttribute(KernelModule module, string op) : Attribute
{
    public KernelModule Module { get; } = module;
    public string Op { get; } = op;
}

/// <summary>The arguments of one kernel launch: a sequential struct of device pointers (<c>nint</c>) and scalars
/// marked <see cref="KernelAttribute"/>.</summary>
internal interface IKernelArgs;

/// <summary>
/// The kernel table, derived from the <see cref="KernelAttribute"/> structs of this assembly (so the names and the
/// argument lists cannot drift apart): which module defines each kernel family, the entry-point names, the argument
/// signatures, and the module sources (embedded resources).
/// </summary>
internal static class KernelCatalog
{
    public static readonly DType[] Types = [DType.F32, DType.F16, DType.BF16];

    private static readonly (KernelModule Module, string Op, Type Args)[] s_kernels =
        typeof(KernelCatalog).Assembly.GetTypes()
            .Select(t => (Type: t, Kernel: t.GetCustomAttribute<KernelAttribute>()))
            .Where(p => p.Kernel is not null)
            .Select(p => (p.Kernel!.Module, p.Kernel.Op, p.Type))
            .OrderBy(k => k.Module).ThenBy(k => k.Op, StringComparer.Ordinal)
            .ToArray();

    private static readonly string[] s_entryPoints =
        s_kernels.SelectMany(k => Types.Select(t => $"{k.Op}_{t.ShortName()}")).ToArray();

    public static int KernelCount => s_kernels.Length;
    public static int ModuleCount => Enum.GetValues<KernelModule>().Length;

    /// <summary>The kernel family index of an argument struct, from its <see cref="KernelAttribute"/> (a struct of
    /// another assembly naming a catalog kernel maps to that kernel).</summary>
    public static int IndexOf(Type args)
    {
        var attribute = args.GetCustomAttribute<KernelAttribute>()
            ?? throw new InvalidOperationException($"{args.Name} is not a kernel's argument struct (no [Kernel] attribute)");
        for (int i = 0; i < s_kernels.Length; i++)
            if (s_kernels[i].Module == attribute.Module && s_kernels[i].Op == attribute.Op)
                return i;
        throw new InvalidOperationException($"{args.Name} names the kernel {attribute.Op} of {FileName(attribute.Module)}, which is not in the catalog");
    }

    public static KernelModule ModuleOf(int kernel) => s_kernels[kernel].Module;

    /// <summary>Index of (kernel, type) in per-function arrays.</summary>
    public static int Index(int kernel, DType type) => kernel * Types.Length + TypeIndex(type);

    public static int TypeIndex(DType type) => type switch
    {
        DType.F32 => 0,
        DType.F16 => 1,
        DType.BF16 => 2,
        _ => throw new ArgumentException($"CUDA kernels exist for F32, F16 and BF16, not {type}"),
    };

    /// <summary>The entry point of a per-function index, e.g. <c>layernorm_modulate_bf16</c> (a cached string).</summary>
    public static string EntryPoint(int index) => s_entryPoints[index];

    /// <summary>Every entry point a module defines, in table order.</summary>
    public static IEnumerable<string> EntryPoints(KernelModule module) =>
        Enumerable.Range(0, s_entryPoints.Length).Where(i => ModuleOf(i / Types.Length) == module).Select(EntryPoint);

    /// <summary>Every entry point of every module.</summary>
    public static IEnumerable<string> AllEntryPoints => s_entryPoints;

    /// <summary>
    /// The emulator's signature of an argument struct (<c>p</c> pointer, <c>i</c>/<c>u</c> 32-bit, <c>l</c>/<c>L</c>
    /// 64-bit, <c>f</c> float, <c>d</c> double), its fields in declaration order with nested structs flattened, after
    /// checking that every field sits at its natural alignment, where the driver puts the kernel's parameter of that type.
    /// </summary>
    public static string Signature(Type args)
    {
        var letters = new StringBuilder();
        long natural = 0;
        Flatten(args, args.Name, 0, letters, ref natural);
        return letters.ToString();
    }

    private static void Flatten(Type type, string path, long baseOffset, StringBuilder letters, ref long natural)
    {
        var fields = type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic);
        Array.Sort(fields, (a, b) => a.MetadataToken.CompareTo(b.MetadataToken));   // declaration order
        foreach (var field in fields)
        {
            long actual = baseOffset + Marshal.OffsetOf(type, field.Name);
            var kind = Letter(field.FieldType);
            if (kind is null)
            {
                if (!field.FieldType.IsValueType || field.FieldType.IsPrimitive || field.FieldType.IsEnum)
                    throw new InvalidOperationException($"{path}.{field.Name}: a kernel argument must be nint, int, uint, long, ulong, float, double or a struct of them, not {field.FieldType.Name}");
                Flatten(field.FieldType, $"{path}.{field.Name}", actual, letters, ref natural);
                continue;
            }
            var (letter, size) = kind.Value;
            natural = (natural + size - 1) / size * size;
            if (actual != natural)
                throw new InvalidOperationException($"{path}.{field.Name} is at byte {actual}, not at {natural} where the kernel's parameter lies (use a sequential struct)");
            natural += size;
            letters.Append(letter);
        }
    }

    private static (char Letter, int Size)? Letter(Type t) =>
        t == typeof(nint) || t == typeof(nuint) ? ('p', 8)
        : t == typeof(int) ? ('i', 4) : t == typeof(uint) ? ('u', 4)
        : t == typeof(long) ? ('l', 8) : t == typeof(ulong) ? ('L', 8)
        : t == typeof(float) ? ('f', 4) : t == typeof(double) ? ('d', 8)
        : null;

    public static string FileName(KernelModule module) => module.ToString().ToLowerInvariant() + ".cu";

    public static string Source(KernelModule module) => Resource(FileName(module));

    public static string Prelude => Resource("prelude.cuh");

    private static string Resource(string file)
    {
        string name = "BlockDance.Kernels.cuda." + file;
        using var stream = typeof(KernelCatalog).Assembly.GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"the kernel source {name} is not embedded in {typeof(KernelCatalog).Assembly.GetName().Name}");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    /// <summary>
    /// A PTX text that declares the module's entry points with empty bodies. The emulator runs its own g++ build of
    /// the kernels and only needs the names from the image, so this lets <c>cuda-emu</c> work without NVRTC.
    /// </summary>
    public static byte[] StubPtx(KernelModule module)
    {
        var sb = new StringBuilder(".version 7.8\n.target sm_90\n");
        foreach (string entry in EntryPoints(module))
            sb.Append(".entry ").Append(entry).Append("()\n{\n}\n");
        return Encoding.ASCII.GetBytes(sb.ToString());
    }
}

/// <summary>Per argument struct, its kernel family index and signature, computed once (reflection) on first use.</summary>
internal static class KernelArgs<TArgs> where TArgs : unmanaged, IKernelArgs
{
    private static int s_kernel = -1;
    private static string? s_signature;

    public static int Kernel => s_kernel >= 0 ? s_kernel : s_kernel = KernelCatalog.IndexOf(typeof(TArgs));

    public static string Signature => s_signature ??= KernelCatalog.Signature(typeof(TArgs));
}
