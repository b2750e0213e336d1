using BlockDance.Runtime;

namespace BlockDance.Dit.Caching;

/// <summary>
/// The stored output of the block before the boundary, (B, T, D) in the device's memory. It belongs to one run: the run
/// allocates it for its batch and resolution and drops it at the end, so a new run, step count, resolution or batch
/// can never read stale features. With classifier-free guidance the batch is <c>[cond…, uncond…]</c> and both halves
/// are stored together, item by item, because they run as one batch. Store and load are device-to-device copies.
/// </summary>
internal sealed class FeatureCache : IDisposable
{
    public FeatureCache(Device device, DType type, int batch, int tokens, int hidden)
    {
        Features = device.Allocate(type, batch, tokens, hidden);
        _items = Enumerable.Range(0, batch).Select(i => Features.Slice(i, 1)).ToArray();
    }

    private readonly Tensor[] _items;   // per batch item, views of Features

    public Tensor Features { get; }
    public long Bytes => Features.ByteCount;

    /// <summary>Sampling step whose features are stored, or −1 while empty.</summary>
    public int FilledAtStep { get; private set; } = -1;

    public void Store(Tensor x, int step)
    {
        Features.Device.Copy(x, Features);
        FilledAtStep = step;
    }

    /// <summary>Stores batch item <paramref name="item"/>'s feature alone (<paramref name="x"/>: one item, (1, T, D)).</summary>
    public void StoreItem(Tensor x, int item, int step)
    {
        Features.Device.Copy(x, _items[item]);
        FilledAtStep = step;
    }

    /// <summary>Copies batch item <paramref name="item"/>'s stored feature into <paramref name="x"/> (one item, (1, T, D)).</summary>
    public void LoadItem(Tensor x, int item) => Features.Device.Copy(_items[item], x);

    public void Load(Tensor x, int step)
    {
        if (FilledAtStep < 0)
            throw new InvalidOperationException($"step {step} reuses the feature cache, but no step has filled it");
        Features.Device.Copy(Features, x);
    }

    public void Dispose() => Features.Dispose();
}
