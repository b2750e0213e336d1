namespace BlockDance.Dit;

/// <summary>A checkpoint that cannot be used as a model: unknown layout, missing, unexpected or mis-shaped tensors.</summary>
public sealed class CheckpointException(string message) : Exception(message);
