namespace BlockDance.Runtime.Cuda;

/// <summary>A CUDA driver call failed; names the call, the CUresult and its description.</summary>
public sealed class CudaException(string call, int code, string name, string description)
    : DeviceException($"{call} failed: {name} ({code}): {description}")
{
    /// <summary>The driver call, as written at the call site.</summary>
    public string Call { get; } = call;
    /// <summary>The CUresult.</summary>
    public int Code { get; } = code;

    /// <summary>The CUresult's name (CUDA_ERROR_...).</summary>
    public string ErrorName { get; } = name;
}

/// <summary>An NVRTC call or compilation failed; carries the full compile log, the options and the program name.</summary>
public sealed class NvrtcException(string call, int code, string description, string program, IReadOnlyList<string> options, string log)
    : DeviceException($"{call} failed for '{program}': {description} ({code})\noptions: {string.Join(' ', options)}" + (log.Length > 0 ? $"\n{log}" : ""))
{
    /// <summary>The NVRTC call that failed.</summary>
    public string Call { get; } = call;

    /// <summary>The nvrtcResult.</summary>
    public int Code { get; } = code;

    /// <summary>The program (source file) name.</summary>
    public string Program { get; } = program;

    /// <summary>The compile options.</summary>
    public IReadOnlyList<string> Options { get; } = options;

    /// <summary>The full compile log (empty when NVRTC wrote none).</summary>
    public string Log { get; } = log;
}

/// <summary>A cuBLAS call failed; names the call and the cublasStatus_t.</summary>
public sealed class CublasException(string call, int status, string description)
    : DeviceException($"{call} failed: {description} ({status})")
{
    /// <summary>The cuBLAS call, as written at the call site.</summary>
    public string Call { get; } = call;

    /// <summary>The cublasStatus_t.</summary>
    public int Status { get; } = status;
}

/// <summary>The CUDA device asked for is not available here (no library, no GPU); the message says what to do instead.</summary>
public sealed class CudaUnavailableException(string message, Exception? inner = null) : DeviceException(message, inner);
