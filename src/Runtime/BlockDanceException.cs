namespace BlockDance.Runtime;

/// <summary>
/// The base of every exception the BlockDance library throws on bad input or state (a malformed checkpoint or
/// safetensors file, an invalid plan or request, a device error, a non-finite result). Catch this type to handle
/// everything the library reports, and one of its subtypes to handle one kind of failure.
/// </summary>
public class BlockDanceException : Exception
{
    /// <summary>Creates the exception with a message that names the problem and where it is.</summary>
    public BlockDanceException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }
}
