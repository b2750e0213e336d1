namespace BlockDance.Runtime;

/// <summary>
/// A device failed or is not available: a CUDA driver, NVRTC or cuBLAS call failed (<c>CudaException</c>,
/// <c>NvrtcException</c>, <c>CublasException</c>), the CUDA device asked for is missing (<c>CudaUnavailableException</c>),
/// or a library the CPU device needs (OpenBLAS) is not installed. The message names the call or the library and what
/// to do about it.
/// </summary>
public class DeviceException : BlockDanceException
{
    /// <summary>Creates the exception with a message that names the call or library and the problem.</summary>
    public DeviceException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }
}
