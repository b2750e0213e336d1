namespace BlockDance.Runtime;

/// <summary>
/// A request the library cannot carry out as given: an invalid generation request (no labels, a label outside the
/// model's classes, a latent size that is not a multiple of the patch, ...), an unknown device or data type, or a
/// device asked for a data type it does not compute in. The message names the value and what is expected instead.
/// </summary>
public sealed class InvalidRequestException : BlockDanceException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What is wrong and what is expected, naming the value.</param>
    /// <param name="parameter">The request field or argument at fault (e.g. <c>Labels</c>, <c>device</c>), if one is.</param>
    /// <param name="innerException">The argument check that found the problem, if any.</param>
    public InvalidRequestException(string message, string? parameter = null, Exception? innerException = null)
        : base(message, innerException)
    {
        Parameter = parameter;
    }

    /// <summary>The request field or argument at fault, or null.</summary>
    public string? Parameter { get; }
}
