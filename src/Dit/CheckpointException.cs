using BlockDance.Runtime;

namespace BlockDance.Dit;

/// <summary>
/// A checkpoint that cannot be used as a model: unknown layout, missing, unexpected or mis-shaped tensors, a corrupt
/// value. The message starts with the file's path. (A file that is missing, a folder or not valid safetensors at all is a
/// <see cref="Runtime.Safetensors.SafetensorsException"/>.)
/// </summary>
public sealed class CheckpointException(string message) : BlockDanceException(message);
