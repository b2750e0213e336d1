namespace BlockDance.Runtime.Cuda;

/// <summary>A CUDA driver call failed; names the call, the CUresult and its description.</summary>
public sealed class CudaException(string call, int code, string name, string description)
    : Exception($"{call} failed: {name} ({code}): {description}")
{
    public string Call { get; } = call;
    public int Code { get; } = code;
    public string ErrorName { get; } = name;
}

/// <summary>An NVRTC call or compilation failed; carries the full compile log, the options and the program name.</summary>
public sealed class NvrtcException(string call, int code, string description, string program, IReadOnlyList<string> options, string log)
    : Exception($"{call} failed for '{program}': {description} ({code})\noptions: {string.Join(' ', options)}" + (log.Length > 0 ? $"\n{log}" : ""))
{
    public string Call { get; } = call;
    public int Code { get; } = code;
    public string Program { get; } = program;
    public IReadOnlyList<string> Options { get; } = options;
    public string Log { get; } = log;
}

/// <summary>A cuBLAS call failed; names the call and the cublasStatus_t.</summary>
public sealed class CublasException(string call, int status, string description)
    : Exception($"{call} failed: {description} ({status})")
{
    public string Call { get; } = call;
    public int Status { get; } = status;
}

/// <summary>The CUDA device asked for is not available here (no library, no GPU); the message says what to do instead.</summary>
public sealed class CudaUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
