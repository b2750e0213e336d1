using System.Diagnostics;
using System.Runtime.InteropServices;
using BlockDance.Kernels;
using BlockDance.Runtime;

namespace BlockDance.Dit.Caching;

/// <summary>
/// Runs the forward of each step of a run whose <see cref="StepController"/> decides at run time, item by item: an item
/// is an image of a DiT or a clip of a Latte video model (<see cref="IItemPass"/>: R = T rows of the stream for an
/// image, F·T for a clip; every per-item buffer below is (B, R, D), and a clip's indicator is over the whole clip). Every
/// buffer (the stored outputs or residuals a Skip step reuses, the indicator's references, one F32 result per batch
/// item) is allocated with the run and lives in the device's memory; the steps allocate nothing.
/// <para>
/// A step runs: the conditioning; the pre-decision indicator if the controller reads one (TeaCache: block 0's modulated
/// input; First-Block-Cache: block 0, then its residual), reduced on the device by <see cref="IOps.RelativeL1"/> and
/// downloaded as one float per batch item; the decision; then the images that compute run the stack (gathered into the
/// first items of the batch when others skip, so the work done is theirs only, and each image's result is what it would
/// be alone) while the images that skip take the stored output (BWCache) or add the stored residual (TeaCache, FBCache).
/// BWCache's indicator is reduced after each chosen block of a computed step and downloaded once after the step; a step
/// that every image skips touches no host memory. With guidance the two halves of image i (items i and n+i) always
/// follow the image's decision, and its indicator is the larger of the halves' values.
/// </para>
/// <para>
/// Reuse at a boundary (a learned policy's plan, <see cref="AdaPolicy"/>) is per image too: at a step whose kinds mix
/// Full, Cache and Reuse, the computing items run blocks <c>[0, boundary)</c> gathered, the Cache ones store their
/// feature in their own slice of the <see cref="FeatureCache"/>, the Reuse ones load theirs, and all items run
/// <c>[boundary, depth)</c> together. An image may reuse only after a Cache step of its own.
/// </para>
/// </summary>
internal sealed class AdaptiveExecutor : IBlockObserver, IDisposable
{
    private readonly IItemPass _pass;
    private readonly IOps _ops;
    private readonly Tensor _x;                     // (B, R, D): the stream, item-major
    private readonly StepController _c;
    private readonly int _images, _batch, _halves, _depth;
    private readonly List<Tensor> _owned = [];
    private readonly IItemPass?[] _prefix;          // views of the first m items, m = 1 … B − 1
    private readonly Tensor[] _xItems;
    private readonly Tensor[][] _condItems;         // per conditioning buffer (B, r·D), its items
    private readonly Tensor _result;                // (B) F32: the indicator per batch item
    private readonly Tensor[] _resultItems;
    private readonly float[] _resultHost;
    private readonly Tensor _skipStore;             // (B, T, D): the last block's output, or the skipped blocks' residual
    private readonly Tensor[] _skipItems;
    private readonly Tensor? _stackIn;              // (B, T, D): the input of the skipped blocks (residual mode)
    private readonly Tensor[]? _stackInItems;
    private readonly Tensor? _minusOne;             // (B, D) of −1: x − h as GatedResidualAdd(x, h, −1)
    private readonly Tensor[]? _minusOneItems;
    private readonly Tensor[] _prev;                // BWCache: per indicator block, its output at the last computed step
    private readonly Tensor[][] _prevItems;
    private readonly int[] _blockSlot;              // block → index in _prev, or −1
    private readonly float _blockWeight;
    private readonly Tensor? _prevProbe;            // TeaCache: the previous step's modulated input of block 0
    private readonly Tensor? _headIn, _headRes, _headRef;  // FBCache
    private readonly Tensor[]? _headResItems, _headRefItems;
    private readonly FeatureCache? _features;       // Reuse steps at a boundary (a learned policy's plan)
    private readonly bool _aliasedStore;            // _skipStore is _prev of the last block
    private readonly bool[] _hasRef, _filled, _featuresFilled;   // _featuresFilled: per image, a Cache step stored its feature
    private readonly Tensor[] _condBackup;          // the conditioning buffers while the gathered items use the first rows
    private readonly int[] _compute;                // items that compute this step, ascending
    private readonly StepKind[] _itemKind;          // kind of each batch item this step
    private int _computeCount, _step;
    private bool _gathered, _anyRef;
    private IBlockObserver? _observer;

    public AdaptiveExecutor(IItemPass pass, IOps ops, int depth, StepController controller, int images, int batch)
    {
        _pass = pass;
        _ops = ops;
        _x = pass.ItemStream;
        _c = controller;
        _images = images;
        _batch = batch;
        _halves = batch / images;
        _depth = depth;
        if (pass.Items != batch || batch % images != 0)
            throw new PlanException($"the pass holds {pass.Items} items; the run has {images} images in a batch of {batch}");
        if (controller.Depth != depth || controller.Images != images)
            throw new PlanException($"the controller was made for {controller.Depth} blocks and {controller.Images} images; the run has {depth} and {images}");
        if (controller.SkipFrom < 0 || controller.SkipFrom >= depth || (controller.Indicator == CacheIndicator.HeadResidual && controller.SkipFrom < 1))
            throw new PlanException($"a Skip from block {controller.SkipFrom} does not fit a {depth}-block model (First-Block-Cache needs SkipFrom ≥ 1)");
        try
        {
            var type = _ops.ActivationType;
            int t = _x.Dim(1), d = _x.Dim(2);   // t: rows per item (T, or F·T for a clip)
            Tensor New(DType dt, params int[] shape)
            {
                var tensor = _ops.Device.Allocate(dt, shape);
                _owned.Add(tensor);
                return tensor;
            }
            Tensor[] Items(Tensor x) => Enumerable.Range(0, batch).Select(i => x.Slice(i, 1)).ToArray();
            _prefix = new IItemPass?[batch];
            for (int m = 1; m < batch; m++)
                _prefix[m] = pass.Prefix(m);
            _xItems = Items(_x);
            _condItems = pass.ItemConditioning.Select(Items).ToArray();
            _condBackup = pass.ItemConditioning.Select(c => New(type, c.Shape.ToArray())).ToArray();
            _result = New(DType.F32, batch);
            _resultItems = Items(_result);
            _resultHost = new float[batch];
            var blocks = controller.Indicator == CacheIndicator.BlockOutputs ? controller.IndicatorBlocks : [];
            if (controller.Indicator == CacheIndicator.BlockOutputs && blocks.Count == 0)
                throw new PlanException("an indicator over block outputs needs at least one block");
            _blockSlot = Enumerable.Repeat(-1, depth).ToArray();
            for (int j = 0; j < blocks.Count; j++)
            {
                if (blocks[j] < 0 || blocks[j] >= depth || (j > 0 && blocks[j] <= blocks[j - 1]))
                    throw new PlanException($"indicator blocks must be ascending indices in [0, {depth - 1}]");
                _blockSlot[blocks[j]] = j;
            }
            _blockWeight = blocks.Count > 0 ? 1f / blocks.Count : 0f;
            _prev = blocks.Select(_ => New(type, batch, t, d)).ToArray();
            _prevItems = _prev.Select(Items).ToArray();
            _aliasedStore = !controller.SkipAddsResidual && _blockSlot[depth - 1] >= 0;
            _skipStore = _aliasedStore ? _prev[_blockSlot[depth - 1]] : New(type, batch, t, d);
            _skipItems = Items(_skipStore);
            bool residuals = controller.SkipAddsResidual || controller.Indicator == CacheIndicator.HeadResidual;
            if (residuals)
            {
                _stackIn = New(type, batch, t, d);
                _stackInItems = Items(_stackIn);
                _minusOne = _ops.Device.FromFloats(Enumerable.Repeat(-1f, batch * d).ToArray(), type, batch, d);   // gate (B, D) of items (B, R, D)
                _owned.Add(_minusOne);
                _minusOneItems = Items(_minusOne);
            }
            if (controller.Indicator == CacheIndicator.ModulatedInput)
                _prevProbe = New(type, batch, t, d);
            if (controller.Indicator == CacheIndicator.HeadResidual)
            {
                _headIn = New(type, batch, t, d);
                _headRes = New(type, batch, t, d);
                _headRef = New(type, batch, t, d);
                _headResItems = Items(_headRes);
                _headRefItems = Items(_headRef);
            }
            if (controller.Boundary > 0)
                _features = new FeatureCache(_ops.Device, type, batch, t, d);
            _hasRef = new bool[images];
            _filled = new bool[images];
            _featuresFilled = new bool[images];
            _compute = new int[batch];
            _itemKind = new StepKind[batch];
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Device bytes of the policy's buffers.</summary>
    public long Bytes => _owned.Sum(t => t.ByteCount) + (_features?.Bytes ?? 0);

    /// <summary>Milliseconds spent on the indicator (its ops, copies and downloads) and the controller's decisions.</summary>
    public double DecisionMilliseconds { get; private set; }

    /// <summary>
    /// The forward of step <paramref name="k"/>: decides each image's kind (into <paramref name="kinds"/>) and writes the
    /// model output; <paramref name="indicator"/> receives each image's indicator of this step (NaN where none).
    /// </summary>
    public void Forward(int k, Tensor input, Tensor t, Tensor labels, Tensor output, IBlockObserver? observer, Span<StepKind> kinds, Span<float> indicator)
    {
        var x = _x;
        _observer = observer;
        _step = k;
        indicator.Fill(float.NaN);
        _pass.Condition(t, labels);
        bool embedded = false;
        int headDone = 0;
        long start;
        switch (_c.Indicator)
        {
            case CacheIndicator.ModulatedInput:
                _pass.EmbedTokens(input);
                embedded = true;
                start = Stopwatch.GetTimestamp();
                var probe = _pass.ModulatedInput();   // (B, R, D)
                if (k > 0)
                {
                    _ops.RelativeL1(probe, _prevProbe!, _result, 1f, false);
                    Download(indicator, null);
                }
                _ops.Device.Copy(probe, _prevProbe!);
                DecisionMilliseconds += Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                break;
            case CacheIndicator.HeadResidual:
                _pass.EmbedTokens(input);
                embedded = true;
                _ops.Device.Copy(x, _headIn!);
                _pass.RunBlocks(0, _c.SkipFrom, observer);
                headDone = _c.SkipFrom;
                start = Stopwatch.GetTimestamp();
                _ops.Device.Copy(x, _stackIn!);
                _ops.Device.Copy(x, _headRes!);
                _ops.GatedResidualAdd(_headRes!, _headIn!, _minusOne!, 0);   // r = out − in of blocks [0, SkipFrom)
                if (Array.IndexOf(_hasRef, true) >= 0)
                {
                    _ops.RelativeL1(_headRes!, _headRef!, _result, 1f, false);
                    Download(indicator, _hasRef);
                }
                DecisionMilliseconds += Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                break;
        }

        start = Stopwatch.GetTimestamp();
        _c.Decide(k, _c.Indicator is CacheIndicator.ModulatedInput or CacheIndicator.HeadResidual ? indicator : [], kinds);
        DecisionMilliseconds += Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        Validate(k, kinds);

        var first = kinds[0];
        bool uniform = true, anySkip = false;
        foreach (var kind in kinds)
        {
            uniform &= kind == first;
            anySkip |= kind == StepKind.Skip;
        }
        _computeCount = 0;
        for (int h = 0; h < _halves; h++)
            for (int i = 0; i < _images; i++)
            {
                int item = h * _images + i;
                _itemKind[item] = kinds[i];
                if (kinds[i] is StepKind.Full or StepKind.Cache)
                    _compute[_computeCount++] = item;
            }
        _anyRef = false;
        for (int i = 0; i < _images; i++)
            _anyRef |= _hasRef[i] && kinds[i] == StepKind.Cache;

        if (uniform && first == StepKind.Reuse)
        {
            _features!.Load(x, k);
            _pass.RunBlocks(_c.Boundary, _depth, observer);
        }
        else if (uniform && first == StepKind.Skip)
        {
            SkipItems(all: true);
        }
        else
        {
            if (!embedded)
                _pass.EmbedTokens(input);
            if (_c.SkipAddsResidual && _c.SkipFrom == 0)
                _ops.Device.Copy(x, _stackIn!);   // the stack's input: the residual's base, and what a skipping image adds to
            if (uniform)
                ComputeAll(first, headDone);
            else if (_features is not null && !anySkip && headDone == 0)
                ComputeAtBoundary(k);
            else
                ComputeGathered(headDone);
        }
        _pass.Final(output);

        if (_c.Indicator == CacheIndicator.BlockOutputs && _anyRef)
        {
            start = Stopwatch.GetTimestamp();
            Download(indicator, _hasRef);
            for (int i = 0; i < _images; i++)
                if (kinds[i] != StepKind.Cache)
                    indicator[i] = float.NaN;
            DecisionMilliseconds += Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        for (int i = 0; i < _images; i++)
        {
            if (kinds[i] == StepKind.Cache)
                _filled[i] = _hasRef[i] = true;
        }
        if (first == StepKind.Cache && uniform && _features is not null)
            Array.Fill(_featuresFilled, true);
        _observer = null;
    }

    private void Validate(int k, ReadOnlySpan<StepKind> kinds)
    {
        bool reuses = false, skips = false;
        for (int i = 0; i < kinds.Length; i++)
        {
            reuses |= kinds[i] == StepKind.Reuse;
            skips |= kinds[i] == StepKind.Skip;
            if (kinds[i] == StepKind.Reuse && (_features is null || !_featuresFilled[i]))
                throw new InvalidOperationException($"step {k}: image {i} reuses the feature at the boundary, but " +
                    (_features is null ? "the controller has no boundary" : "no earlier Cache step of it stored one"));
        }
        if (reuses && skips)
            throw new InvalidOperationException($"step {k}: the controller mixes Reuse and Skip in one step; a step's images either reuse at a boundary or skip the stack");
        for (int i = 0; i < kinds.Length; i++)
            if (kinds[i] == StepKind.Skip && !_filled[i])
                throw new InvalidOperationException($"step {k}: image {i} skips the stack, but no earlier step of it stored what a Skip reuses");
    }

    // Every item computes: the blocks after the head, in place, as an uncached forward would.
    private void ComputeAll(StepKind kind, int headDone)
    {
        _gathered = false;
        _pass.RunBlocks(headDone, _depth, kind == StepKind.Cache ? this : _observer);
        if (kind != StepKind.Cache)
            return;
        StoreSkip(_x, _skipStore, _stackIn, _minusOne);
        if (_headRes is not null)
        {
            long start = Stopwatch.GetTimestamp();
            _ops.Device.Copy(_headRes, _headRef!);   // the reference of the next comparisons
            DecisionMilliseconds += Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
    }

    // Some images skip: the computing items are gathered into the first items of the batch, run there, and put back.
    private void ComputeGathered(int headDone)
    {
        int m = _computeCount;
        if (m > 0)
            RunGathered(headDone, _depth, null);
        for (int j = 0; j < m; j++)
        {
            int item = _compute[j];
            if (_itemKind[item] != StepKind.Cache)
                continue;
            StoreSkip(_xItems[item], _skipItems[item], _stackInItems?[item], _minusOneItems?[item]);
            if (_headResItems is not null)
            {
                long start = Stopwatch.GetTimestamp();
                _ops.Device.Copy(_headResItems[item], _headRefItems![item]);
                DecisionMilliseconds += Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
        }
        SkipItems(all: false);
    }

    // Runs blocks [from, to) on the computing items only: they are gathered into the first items of the batch (the
    // stream and every per-row conditioning buffer), run there, and put back. With storeFeaturesAt (a step index) the Cache items store their feature (the
    // output of block to − 1 = boundary − 1) item by item before they go back.
    private void RunGathered(int from, int to, int? storeFeaturesAt)
    {
        int m = _computeCount;
        var conditioning = _pass.ItemConditioning;
        for (int c = 0; c < _condItems.Length; c++)
            _ops.Device.Copy(conditioning[c], _condBackup[c]);
        for (int j = 0; j < m; j++)
            if (_compute[j] != j)
            {
                // Item j itself skips or was gathered earlier (j ≤ compute[j]), so its slot is free.
                _ops.Device.Copy(_xItems[_compute[j]], _xItems[j]);
                for (int c = 0; c < _condItems.Length; c++)
                    _ops.Device.Copy(_condItems[c][_compute[j]], _condItems[c][j]);
            }
        _gathered = true;
        (m < _batch ? _prefix[m]! : _pass).RunBlocks(from, to, this);
        _gathered = false;
        if (storeFeaturesAt is int k)
            for (int j = 0; j < m; j++)
                if (_itemKind[_compute[j]] == StepKind.Cache)
                {
                    _features!.StoreItem(_xItems[j], _compute[j], k);
                    _featuresFilled[_compute[j] % _images] = true;
                }
        for (int j = m - 1; j >= 0; j--)
            if (_compute[j] != j)
                _ops.Device.Copy(_xItems[j], _xItems[_compute[j]]);
        for (int c = 0; c < _condItems.Length; c++)
            _ops.Device.Copy(_condBackup[c], conditioning[c]);
    }

    // Per-image kinds at a boundary (a learned policy's plan): the items that compute (Full, Cache) run blocks
    // [0, boundary) gathered into the first items, the Cache ones store their feature item by item, the Reuse ones take
    // their own stored feature, then every item runs blocks [boundary, depth) together. Each item's rows go through the
    // same row-wise ops as when it runs alone, so its result does not depend on the other items' kinds.
    private void ComputeAtBoundary(int k)
    {
        int boundary = _c.Boundary;
        if (_computeCount > 0)
            RunGathered(0, boundary, k);
        for (int item = 0; item < _batch; item++)
            if (_itemKind[item] == StepKind.Reuse)
                _features!.LoadItem(_xItems[item], item);
        _pass.RunBlocks(boundary, _depth, _observer);
    }

    private void StoreSkip(Tensor x, Tensor store, Tensor? stackIn, Tensor? minusOne)
    {
        if (_c.SkipAddsResidual)
        {
            _ops.Device.Copy(x, store);
            _ops.GatedResidualAdd(store, stackIn!, minusOne!, 0);   // residual of the skipped blocks
        }
        else if (!_aliasedStore)
        {
            _ops.Device.Copy(x, store);
        }
    }

    private void SkipItems(bool all)
    {
        for (int item = 0; item < _batch; item++)
        {
            if (!all && _itemKind[item] != StepKind.Skip)
                continue;
            if (all)
            {
                if (_c.SkipAddsResidual)
                    _ops.Add(_x, _skipStore, _x);
                else
                    _ops.Device.Copy(_skipStore, _x);
                return;
            }
            if (_c.SkipAddsResidual)
                _ops.Add(_stackInItems![item], _skipItems[item], _xItems[item]);
            else
                _ops.Device.Copy(_skipItems[item], _xItems[item]);
        }
    }

    /// <summary>BWCache's indicator, after each chosen block of a computing item (the run's block observer).</summary>
    public void OnBlockOutput(int block, Tensor x)
    {
        // x is the stream as the model runs it (Latte: (B·F, T, D) frame-major); ungathered, _x is the same memory as (B, R, D).
        if (!_gathered)
        {
            _observer?.OnBlockOutput(block, x);
            if (_features is not null && block == _c.Boundary - 1 && _itemKind[0] == StepKind.Cache)
                _features.Store(_x, _step);   // not gathered: every item has the same kind
        }
        int slot = _blockSlot[block];
        if (slot < 0 || _c.Indicator != CacheIndicator.BlockOutputs)
            return;
        long start = Stopwatch.GetTimestamp();
        bool accumulate = slot > 0;
        if (!_gathered)
        {
            if (_anyRef)
                _ops.RelativeL1(_x, _prev[slot], _result, _blockWeight, accumulate);
            _ops.Device.Copy(_x, _prev[slot]);
        }
        else
        {
            for (int j = 0; j < _computeCount; j++)
            {
                int item = _compute[j];
                if (_itemKind[item] != StepKind.Cache)
                    continue;
                var prev = _prevItems[slot][item];
                if (_hasRef[item % _images])
                    _ops.RelativeL1(_xItems[j], prev, _resultItems[item], _blockWeight, accumulate);
                _ops.Device.Copy(_xItems[j], prev);
            }
        }
        DecisionMilliseconds += Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    // One download of B floats; image i's value is the larger of its halves' (NaN where mask says there is none).
    private void Download(Span<float> perImage, bool[]? mask)
    {
        _ops.Device.Download(_result, MemoryMarshal.AsBytes(_resultHost.AsSpan()));
        for (int i = 0; i < _images; i++)
        {
            float v = _resultHost[i];
            for (int h = 1; h < _halves; h++)
                v = Math.Max(v, _resultHost[h * _images + i]);
            perImage[i] = mask is null || mask[i] ? v : float.NaN;
        }
    }

    public void Dispose()
    {
        _features?.Dispose();
        foreach (var t in _owned)
            t.Dispose();
        _owned.Clear();
    }
}
