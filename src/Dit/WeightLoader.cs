using BlockDance.Kernels;
using BlockDance.Runtime;

namespace BlockDance.Dit;

/// <summary>
/// Turns checkpoint parameters (named by their original DiT keys) into tensors on the model's device, in the
/// backend's activation type. On the CPU device a float32 parameter stored in one piece is a zero-copy view of the
/// memory-mapped file; everything else (other dtypes, the diffusers q/k/v that must be concatenated, any CUDA device)
/// is converted once on the host and uploaded. Owned tensors are returned to the model for disposal.
/// </summary>
internal sealed class WeightLoader(DitCheckpoint checkpoint, IOps ops) : IDisposable
{
    public List<Tensor> Owned { get; } = [];

    public Linear Linear(string prefix) => new(Load(prefix + ".weight"), Load(prefix + ".bias"));

    /// <summary>Loads a parameter, optionally viewed under another shape with the same element count.</summary>
    public Tensor Load(string originalKey, params int[] shape) =>
        TryLoad(originalKey, shape) ?? throw new CheckpointException($"{checkpoint.Path}: missing parameter '{originalKey}'");

    public Tensor? TryLoad(string originalKey, params int[] shape)
    {
        string[] keys = checkpoint.SourceKeys(originalKey);
        var file = checkpoint.File;
        if (keys.Length == 0 || !keys.All(file.Contains))
            return null;
        var infos = keys.Select(k => file[k]).ToArray();
        int[] stored = infos.Length == 1 ? infos[0].ShapeToArray() : [infos.Sum(i => i.Shape[0]), .. infos[0].ShapeToArray()[1..]];
        int[] target = shape.Length > 0 ? shape : stored;
        if (ops.Device.IsHostMemory && ops.ActivationType == DType.F32 && infos.Length == 1 && infos[0].DType == DType.F32)
            return file.AsCpuTensor(keys[0]).Reshape(target);
        var values = keys.Length == 1 ? file.ReadFloat32(keys[0]) : keys.SelectMany(file.ReadFloat32).ToArray();
        var tensor = ops.Device.FromFloats(values, ops.ActivationType, target);
        Owned.Add(tensor);
        return tensor;
    }

    public void Dispose()
    {
        foreach (var t in Owned)
            t.Dispose();
        Owned.Clear();
    }
}
