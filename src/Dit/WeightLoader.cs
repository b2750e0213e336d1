using BlockDance.Kernels;
using BlockDance.Runtime;
using BlockDance.Runtime.Safetensors;

namespace BlockDance.Dit;

/// <summary>
/// Turns checkpoint parameters (named by their original DiT keys) into tensors on the model's device, in the
/// backend's activation type. On the CPU device a float32 parameter stored in one piece is a zero-copy view of the
/// memory-mapped file; everything else (other dtypes, the diffusers q/k/v that must be concatenated, any CUDA device)
/// is converted once on the host and uploaded. Owned tensors are returned to the model for disposal. Every weight is
/// checked for NaN and infinity as it is loaded, so a corrupt checkpoint is named with its tensor and element rather
/// than discovered as a NaN result after a whole sampling run. Views hold a lease on the mapping (<see cref="MappingLease"/>,
/// handed to the model), so that disposing the checkpoint before the model unmaps nothing.
/// </summary>
internal sealed class WeightLoader(SafetensorsFile file, Func<string, string[]> sourceKeys, IOps ops, string owner) : IDisposable
{
    /// <summary>A DiT or Latte checkpoint's loader: its keys mapped by its layout.</summary>
    public WeightLoader(DitCheckpoint checkpoint, IOps ops) : this(checkpoint.File, checkpoint.SourceKeys, ops, "the DitModel") { }

    public List<Tensor> Owned { get; } = [];

    /// <summary>The lease on the mapped file that the zero-copy views are checked against; null when there are none.</summary>
    public Lease? MappingLease { get; private set; }

    public Linear Linear(string prefix) => new(Load(prefix + ".weight"), Load(prefix + ".bias"));

    /// <summary>Loads a parameter, optionally viewed under another shape with the same element count.</summary>
    public Tensor Load(string originalKey, params int[] shape) =>
        TryLoad(originalKey, shape) ?? throw new CheckpointException($"{file.Path}: missing parameter '{originalKey}'");

    public Tensor? TryLoad(string originalKey, params int[] shape)
    {
        string[] keys = sourceKeys(originalKey);
        if (keys.Length == 0 || !keys.All(file.Contains))
            return null;
        var infos = keys.Select(k => file[k]).ToArray();
        int[] stored = infos.Length == 1 ? infos[0].ShapeToArray() : [infos.Sum(i => i.Shape[0]), .. infos[0].ShapeToArray()[1..]];
        int[] target = shape.Length > 0 ? shape : stored;
        if (ops.Device.IsHostMemory && ops.ActivationType == DType.F32 && infos.Length == 1 && infos[0].DType == DType.F32)
        {
            MappingLease ??= file.AcquireLease($"{owner} loaded from {file.Path}");
            var view = file.AsCpuTensor(keys[0], MappingLease);
            CheckFinite(view.AsSpan<float>(), keys);
            return view.Reshape(target);
        }
        var values = keys.Length == 1 ? file.ReadFloat32(keys[0]) : keys.SelectMany(file.ReadFloat32).ToArray();
        CheckFinite(values, keys);
        var tensor = ops.Device.FromFloats(values, ops.ActivationType, target);
        Owned.Add(tensor);
        return tensor;
    }

    private void CheckFinite(ReadOnlySpan<float> values, string[] keys)
    {
        int bad = NonFinite.IndexOf(values);
        if (bad < 0)
            return;
        // Map the index back to the source tensor when several were concatenated (diffusers q, k, v).
        long offset = bad;
        string key = keys[0];
        foreach (string k in keys)
        {
            long n = file[k].ElementCount;
            if (offset < n) { key = k; break; }
            offset -= n;
        }
        throw new CheckpointException($"{file.Path}: tensor '{key}' holds {values[bad]} at element {offset}; the checkpoint is corrupt or was saved after a diverged training step");
    }

    public void Dispose()
    {
        foreach (var t in Owned)
            t.Dispose();
        Owned.Clear();
        MappingLease?.Dispose();
    }
}

/// <summary>
/// What a loaded model owns and how long: its own weight copies and the lease on the mapped checkpoint, released when
/// the model is disposed and no run holds a lease on it any more (<see cref="DitModel"/>, <see cref="LatteModel"/>).
/// </summary>
internal sealed class ModelWeights
{
    private readonly string _model;
    private readonly List<Tensor> _owned;
    private readonly Lease? _mapping;
    private readonly Lifetime _lifetime;

    /// <summary>Takes over what <paramref name="loader"/> loaded for the model named <paramref name="model"/>.</summary>
    public ModelWeights(string model, WeightLoader loader)
    {
        _model = model;
        _owned = loader.Owned;
        _mapping = loader.MappingLease;
        _lifetime = new Lifetime($"the {model}", Release);
    }

    /// <summary>Bytes of the model's own weight copies (0 once released).</summary>
    public long OwnedBytes => _owned.Sum(t => t.ByteCount);

    /// <summary>True once the weights are gone.</summary>
    public bool IsReleased => _lifetime.IsReleased;

    /// <summary>A lease that keeps the weights alive after <see cref="Dispose"/> until it ends.</summary>
    public Lease Acquire(string holder) => _lifetime.Acquire(holder);

    /// <summary>Throws <see cref="ObjectDisposedException"/> naming the model once the weights are gone.</summary>
    public void ThrowIfDisposed()
    {
        if (_lifetime.IsReleased)
            throw new ObjectDisposedException(_model, $"the {_model} was disposed; load it again to use it");
    }

    /// <summary>The model's own reference: the weights go now, or when the last lease ends. Idempotent.</summary>
    public void Dispose() => _lifetime.Dispose();

    private void Release()
    {
        foreach (var t in _owned)
            t.Dispose();
        _owned.Clear();
        _mapping?.Dispose();
    }
}
