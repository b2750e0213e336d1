namespace BlockDance.Runtime;

/// <summary>
/// The base of every exception the BlockDance library throws on bad input or state (a malformed checkpoint or
/// safetensors file, an invalid plan or request, a device error, a non-finite result). Catch this type to handle
/// everything the library reports, and one of its subtypes to handle one kind of failure:
/// <list type="bullet">
/// <item><c>BlockDance.Runtime.Safetensors.SafetensorsException</c>: a safetensors file is missing, a folder, malformed or unsupported;</item>
/// <item><c>BlockDance.Dit.CheckpointException</c>: a safetensors file is not a usable DiT checkpoint;</item>
/// <item><c>BlockDance.Dit.Caching.PlanException</c>: an invalid cache policy or step plan;</item>
/// <item><see cref="InvalidRequestException"/>: an invalid generation request, device name or data type;</item>
/// <item><see cref="DeviceException"/>: a CUDA, NVRTC or cuBLAS failure, a missing device or library;</item>
/// <item><c>BlockDance.Dit.Pipeline.NonFiniteResultException</c>: a run produced NaN or infinity.</item>
/// </list>
/// Programming errors keep their usual .NET types: <see cref="ArgumentException"/> for a tensor of the wrong shape
/// passed to an op or a helper, <see cref="ObjectDisposedException"/> for an object used after it was disposed,
/// <see cref="InvalidOperationException"/> for a call in the wrong state.
/// </summary>
public class BlockDanceException : Exception
{
    /// <summary>Creates the exception with a message that names the problem and where it is.</summary>
    public BlockDanceException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }
}
