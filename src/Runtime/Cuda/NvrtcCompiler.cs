using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using BlockDance.Runtime.Cuda.Native;

namespace BlockDance.Runtime.Cuda;

/// <summary>The result of one NVRTC compilation: a CUBIN for a real architecture (sm_XX) or PTX for a virtual one.</summary>
/// <param name="Image">The bytes to load with <see cref="CudaModule"/>: the CUBIN, or the PTX text.</param>
/// <param name="IsCubin">True for a CUBIN (a real architecture), false for PTX.</param>
/// <param name="Architecture">The target, e.g. <c>sm_90</c> or <c>compute_90</c>.</param>
/// <param name="Ptx">The PTX NVRTC produced (also for a CUBIN build).</param>
/// <param name="Log">NVRTC's log (warnings; empty when it wrote none).</param>
public sealed record CompiledImage(byte[] Image, bool IsCubin, string Architecture, string Ptx, string Log);

/// <summary>
/// NVRTC, bound at run time (Debian's <c>libnvrtc11.2</c> = NVRTC 11.8 on machines without a GPU). Headers are passed
/// in memory, never read from disk. A failed compilation throws an <see cref="NvrtcException"/> holding the full log,
/// the options and the program name — the log is read before anything is thrown.
/// </summary>
/// <remarks>Public for kernel engineers who compile and load their own sources next to the project's (the project's
/// kernel loader in BlockDance.Kernels uses exactly this type).</remarks>
public sealed unsafe class NvrtcCompiler
{
    private readonly NvrtcApi _api;

    private NvrtcCompiler(NvrtcApi api)
    {
        _api = api;
        int major = 0, minor = 0, n = 0;
        Check(api.nvrtcVersion(&major, &minor), "", []);
        Version = (major, minor);
        Check(api.nvrtcGetNumSupportedArchs(&n), "", []);
        var archs = new int[n];
        fixed (int* p = archs)
            Check(api.nvrtcGetSupportedArchs(p), "", []);
        SupportedArchitectures = archs;
    }

    /// <summary>NVRTC if a library is installed, else null.</summary>
    public static NvrtcCompiler? TryLoad() => CudaLibraries.TryLoadNvrtc() is { } lib ? new NvrtcCompiler(new NvrtcApi(lib)) : null;

    /// <summary>NVRTC's version (11.8 for Debian's libnvrtc11.2).</summary>
    public (int Major, int Minor) Version { get; }

    /// <summary>The real architectures this NVRTC compiles CUBINs for, as numbers (80 for sm_80).</summary>
    public IReadOnlyList<int> SupportedArchitectures { get; }

    /// <summary>The path of the loaded NVRTC library.</summary>
    public string LibraryPath => _api.Library.Path;

    /// <summary>
    /// The architecture to compile for a device of compute capability <paramref name="cc"/>: <c>sm_{cc}</c> (CUBIN) when
    /// this NVRTC supports it, otherwise PTX for the newest supported <c>compute_XX</c> not above it, which the driver JITs.
    /// </summary>
    public string ArchitectureFor((int Major, int Minor) cc)
    {
        int wanted = cc.Major * 10 + cc.Minor;
        if (SupportedArchitectures.Contains(wanted))
            return $"sm_{wanted}";
        int best = SupportedArchitectures.Where(a => a <= wanted).DefaultIfEmpty(0).Max();
        return best > 0 ? $"compute_{best}"
            : throw new NotSupportedException($"NVRTC {Version.Major}.{Version.Minor} supports none of the architectures up to sm_{wanted}");
    }

    /// <param name="architecture">"sm_90" (PTX and CUBIN) or "compute_90" (PTX only).</param>
    public CompiledImage Compile(string source, string programName, IReadOnlyList<(string Name, string Source)> headers,
        string architecture, IReadOnlyList<string> extraOptions)
    {
        var options = new List<string> { $"--gpu-architecture={architecture}" };
        options.AddRange(extraOptions);
        var pinned = new List<GCHandle>();
        byte* Pin(string s)
        {
            var h = GCHandle.Alloc(Encoding.UTF8.GetBytes(s + "\0"), GCHandleType.Pinned);
            pinned.Add(h);
            return (byte*)h.AddrOfPinnedObject();
        }
        nint program = 0;
        try
        {
            var headerSources = stackalloc byte*[Math.Max(1, headers.Count)];
            var headerNames = stackalloc byte*[Math.Max(1, headers.Count)];
            for (int i = 0; i < headers.Count; i++)
            {
                headerSources[i] = Pin(headers[i].Source);
                headerNames[i] = Pin(headers[i].Name);
            }
            Check(_api.nvrtcCreateProgram(&program, Pin(source), Pin(programName), headers.Count, headerSources, headerNames), programName, options);
            var optionPointers = stackalloc byte*[options.Count];
            for (int i = 0; i < options.Count; i++)
                optionPointers[i] = Pin(options[i]);
            int result = _api.nvrtcCompileProgram(program, options.Count, optionPointers);
            string log = Log(program, programName, options);
            Check(result, programName, options, log);
            nuint ptxSize = 0, cubinSize = 0;
            Check(_api.nvrtcGetPTXSize(program, &ptxSize), programName, options, log);
            var ptx = new byte[ptxSize];
            fixed (byte* p = ptx)
                Check(_api.nvrtcGetPTX(program, p), programName, options, log);
            string ptxText = Encoding.UTF8.GetString(ptx).TrimEnd('\0');
            bool cubin = architecture.StartsWith("sm_", StringComparison.Ordinal);
            if (!cubin)
                return new CompiledImage(ptx, false, architecture, ptxText, log);
            Check(_api.nvrtcGetCUBINSize(program, &cubinSize), programName, options, log);
            var image = new byte[cubinSize];
            fixed (byte* p = image)
                Check(_api.nvrtcGetCUBIN(program, p), programName, options, log);
            return new CompiledImage(image, true, architecture, ptxText, log);
        }
        finally
        {
            if (program != 0)
                _api.nvrtcDestroyProgram(&program);
            foreach (var h in pinned)
                h.Free();
        }
    }

    private string Log(nint program, string name, IReadOnlyList<string> options)
    {
        nuint size = 0;
        Check(_api.nvrtcGetProgramLogSize(program, &size), name, options);
        var log = new byte[size];
        fixed (byte* p = log)
            Check(_api.nvrtcGetProgramLog(program, p), name, options);
        return Encoding.UTF8.GetString(log).TrimEnd('\0').Trim();
    }

    private void Check(int result, string program, IReadOnlyList<string> options, string log = "", [CallerArgumentExpression(nameof(result))] string? call = null)
    {
        if (result == 0)
            return;
        byte* s = _api.nvrtcGetErrorString(result);
        string description = s is null ? "NVRTC error" : Marshal.PtrToStringUTF8((nint)s) ?? "NVRTC error";
        string name = call is null ? "NVRTC" : call.Replace("_api.", "", StringComparison.Ordinal);
        int paren = name.IndexOf('(', StringComparison.Ordinal);
        throw new NvrtcException(paren > 0 ? name[..paren] : name, result, description, program, options, log);
    }
}
