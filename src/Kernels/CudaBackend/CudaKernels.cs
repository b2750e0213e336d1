using BlockDance.Runtime;
using BlockDance.Runtime.Cuda;

namespace BlockDance.Kernels.Cuda;

/// <summary>
/// The typed launchers: exactly one per kernel family of <c>src/Kernels/cuda/*.cu</c>. Each validates the shapes and
/// types of its operands (activations must be in the backend's storage type), computes the launch configuration (the
/// only place it is computed; the .cu file's header explains it) and queues the kernel on the device's stream through
/// <see cref="KernelModules.Launch"/>. Arguments are the addresses of locals whose C# types match the kernel's
/// parameters exactly (device pointers as <c>nint</c>, <c>int</c>, <c>float</c>, <c>ulong</c> for 64-bit); nothing is
/// boxed, allocated or synchronized.
/// </summary>
// SAFETY: every launcher takes the addresses of its own locals (and of value parameters, which are locals too) into a
// stackalloc'd array and passes it to cuLaunchKernel before returning. cuLaunchKernel copies the argument values when
// it is called (the CUDA driver API contract for kernelParams), so the pointers never outlive the frame they point
// into. Device pointers are never dereferenced here: they are only passed on, after the shape checks above each launch
// have established that the kernel's index ranges stay inside the tensors.
internal sealed unsafe class CudaKernels
{
    /// <summary>Threads per block of the elementwise kernels (grid-stride loops).</summary>
    public const uint ElementwiseBlock = 256;

    /// <summary>Threads per block of the softmax: 4 warps, one row each.</summary>
    public const uint SoftmaxBlock = 128;

    /// <summary>Most threads per block of the LayerNorm (one block per row).</summary>
    public const uint LayerNormMaxBlock = 256;

    private readonly CudaDevice _device;
    private readonly KernelModules _modules;
    private readonly DType _type;
    private readonly long _maxElementwiseBlocks;

    public CudaKernels(CudaDevice device, KernelModules modules, DType activationType)
    {
        _device = device;
        _modules = modules;
        _type = activationType;
        // One full wave: 2048 resident threads per SM on sm_80/sm_90 = 8 blocks of 256.
        _maxElementwiseBlocks = Math.Max(1, device.MultiprocessorCount) * 8L;
    }

    // ---------------------------------------------------------------------------------------------------------------
    // linear.cu

    /// <summary>
    /// <c>y = act(acc + bias)</c> over y [M, N]; <paramref name="acc"/> is float32 M·N (y itself for F32, the GEMM's
    /// float32 scratch otherwise). bias [N] or null.
    /// </summary>
    public void BiasActivation(nint acc, Tensor? bias, Tensor y, Activation act)
    {
        Activations("Linear", y);
        int n = y.Dim(-1);
        if (bias is not null)
        {
            Activations("Linear", bias);
            if (bias.Count != n)
                throw new ArgumentException($"Linear: bias {bias.ShapeString} does not have N = {n} elements");
        }
        if (acc == y.Address && _type != DType.F32)
            throw new ArgumentException("Linear: an in-place epilogue needs F32 activations");
        int total = Total(y.Count, "Linear");
        if (total == 0)
            return;
        nint accP = acc, biasP = bias?.Address ?? 0, yP = y.Address;
        int actCode = act switch
        {
            Activation.None => 0,
            Activation.GeluTanh => 1,
            Activation.Silu => 2,
            _ => throw new ArgumentOutOfRangeException(nameof(act), act, "unknown activation"),
        };
        void** slots = stackalloc void*[6];
        byte* letters = stackalloc byte[6];
        var args = new KernelArgs(slots, letters, 6);
        args.Add(&accP);
        args.Add(&biasP);
        args.Add(&yP);
        args.Add(&total);
        args.Add(&n);
        args.Add(&actCode);
        _modules.Launch(Kernel.BiasAct, _type, ElementwiseGrid(total), ElementwiseBlock, 0, args);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // elementwise.cu

    public void Silu(Tensor x, Tensor y)
    {
        Activations("Silu", x, y);
        Check.SameCount(x, y, "Silu");
        int total = Total(x.Count, "Silu");
        if (total == 0)
            return;
        nint xP = x.Address, yP = y.Address;
        void** slots = stackalloc void*[3];
        byte* letters = stackalloc byte[3];
        var args = new KernelArgs(slots, letters, 3);
        args.Add(&xP);
        args.Add(&yP);
        args.Add(&total);
        _modules.Launch(Kernel.Silu, _type, ElementwiseGrid(total), ElementwiseBlock, 0, args);
    }

    public void Add(Tensor a, Tensor b, Tensor y)
    {
        Activations("Add", a, b, y);
        Check.SameCount(a, b, "Add");
        Check.SameCount(a, y, "Add");
        int total = Total(a.Count, "Add");
        if (total == 0)
            return;
        nint aP = a.Address, bP = b.Address, yP = y.Address;
        void** slots = stackalloc void*[4];
        byte* letters = stackalloc byte[4];
        var args = new KernelArgs(slots, letters, 4);
        args.Add(&aP);
        args.Add(&bP);
        args.Add(&yP);
        args.Add(&total);
        _modules.Launch(Kernel.Add, _type, ElementwiseGrid(total), ElementwiseBlock, 0, args);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // adaln.cu

    public void LayerNormModulate(Tensor x, Tensor mod, int shiftChunk, int scaleChunk, float eps, Tensor y)
    {
        Activations("LayerNormModulate", x, mod, y);
        var (batch, tokens, d) = Check.Btd(x, "LayerNormModulate");
        Check.SameCount(x, y, "LayerNormModulate");
        int chunks = Check.Modulation(mod, batch, d, "LayerNormModulate", shiftChunk, scaleChunk);
        Total(x.Count, "LayerNormModulate");
        int rows = batch * tokens;
        if (rows == 0 || d == 0)
            return;
        // One block per row; at most 256 threads, fewer (a multiple of 32, for the block reduction) for short rows.
        uint block = Math.Min(LayerNormMaxBlock, (uint)(d + 31) / 32 * 32);
        nint xP = x.Address, modP = mod.Address, yP = y.Address;
        int modStride = chunks * d, shiftOff = shiftChunk * d, scaleOff = scaleChunk * d;
        void** slots = stackalloc void*[9];
        byte* letters = stackalloc byte[9];
        var args = new KernelArgs(slots, letters, 9);
        args.Add(&xP);
        args.Add(&modP);
        args.Add(&yP);
        args.Add(&tokens);
        args.Add(&d);
        args.Add(&modStride);
        args.Add(&shiftOff);
        args.Add(&scaleOff);
        args.Add(&eps);
        _modules.Launch(Kernel.LayerNormModulate, _type, (uint)rows, block, 0, args);
    }

    public void GatedResidualAdd(Tensor x, Tensor h, Tensor mod, int gateChunk)
    {
        Activations("GatedResidualAdd", x, h, mod);
        var (batch, tokens, d) = Check.Btd(x, "GatedResidualAdd");
        Check.SameCount(x, h, "GatedResidualAdd");
        int chunks = Check.Modulation(mod, batch, d, "GatedResidualAdd", gateChunk, gateChunk);
        int total = Total(x.Count, "GatedResidualAdd");
        if (total == 0)
            return;
        nint xP = x.Address, hP = h.Address, modP = mod.Address;
        int rowBlock = tokens * d, modStride = chunks * d, gateOff = gateChunk * d;
        void** slots = stackalloc void*[8];
        byte* letters = stackalloc byte[8];
        var args = new KernelArgs(slots, letters, 8);
        args.Add(&xP);
        args.Add(&hP);
        args.Add(&modP);
        args.Add(&total);
        args.Add(&rowBlock);
        args.Add(&d);
        args.Add(&modStride);
        args.Add(&gateOff);
        _modules.Launch(Kernel.GatedResidualAdd, _type, ElementwiseGrid(total), ElementwiseBlock, 0, args);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // softmax.cu

    /// <summary>
    /// Row softmax of float32 <paramref name="scores"/> [rows, cols] into <paramref name="probs"/> [rows, cols] in the
    /// storage type (device addresses in the ops' workspace; for F32 they may be equal).
    /// </summary>
    public void Softmax(nint scores, nint probs, int rows, int cols)
    {
        if (scores == 0 || probs == 0 || rows < 0 || cols < 0)
            throw new ArgumentException($"Attention: softmax of {rows}×{cols} scores at 0x{scores:x} into 0x{probs:x}");
        if ((long)rows * cols > int.MaxValue)
            throw new ArgumentException($"Attention: {rows}×{cols} scores exceed 2^31 − 1 elements");
        if (rows == 0 || cols == 0)
            return;
        uint rowsPerBlock = SoftmaxBlock / 32;
        uint grid = (uint)((rows + rowsPerBlock - 1) / rowsPerBlock);
        nint sP = scores, pP = probs;
        void** slots = stackalloc void*[4];
        byte* letters = stackalloc byte[4];
        var args = new KernelArgs(slots, letters, 4);
        args.Add(&sP);
        args.Add(&pP);
        args.Add(&rows);
        args.Add(&cols);
        _modules.Launch(Kernel.Softmax, _type, grid, SoftmaxBlock, 0, args);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // patch.cu

    public void Patchify(Tensor image, int patch, Tensor cols)
    {
        Activations("Patchify", image, cols);
        var g = Check.Patchify(image, patch, cols);
        LaunchPatch(Kernel.Patchify, image.Address, cols.Address, g.Channels, g.Height, g.Width, patch, Total(image.Count, "Patchify"));
    }

    public void Unpatchify(Tensor x, int patch, Tensor image)
    {
        Activations("Unpatchify", x, image);
        var g = Check.Unpatchify(x, patch, image);
        LaunchPatch(Kernel.Unpatchify, x.Address, image.Address, g.Channels, g.Height, g.Width, patch, Total(image.Count, "Unpatchify"));
    }

    // patchify and unpatchify share their parameter list and configuration (one thread per output element).
    private void LaunchPatch(Kernel kernel, nint src, nint dst, int channels, int height, int width, int patch, int total)
    {
        if (total == 0)
            return;
        nint srcP = src, dstP = dst;
        void** slots = stackalloc void*[7];
        byte* letters = stackalloc byte[7];
        var args = new KernelArgs(slots, letters, 7);
        args.Add(&srcP);
        args.Add(&dstP);
        args.Add(&channels);
        args.Add(&height);
        args.Add(&width);
        args.Add(&patch);
        args.Add(&total);
        _modules.Launch(kernel, _type, ElementwiseGrid(total), ElementwiseBlock, 0, args);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // rearrange.cu

    public void SwapFrameTokenAxes(Tensor x, Tensor y)
    {
        Activations("SwapFrameTokenAxes", x, y);
        var (_, p, q, d) = Check.SwapFrameTokenAxes(x, y);
        int total = Total(y.Count, "SwapFrameTokenAxes");
        if (total == 0)
            return;
        nint xP = x.Address, yP = y.Address;
        void** slots = stackalloc void*[6];
        byte* letters = stackalloc byte[6];
        var args = new KernelArgs(slots, letters, 6);
        args.Add(&xP);
        args.Add(&yP);
        args.Add(&p);
        args.Add(&q);
        args.Add(&d);
        args.Add(&total);
        _modules.Launch(Kernel.SwapFrameTokenAxes, _type, ElementwiseGrid(total), ElementwiseBlock, 0, args);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // embedding.cu

    public void AddPositionEmbedding(Tensor x, Tensor pos)
    {
        Activations("AddPositionEmbedding", x, pos);
        var (_, tokens, d) = Check.PositionEmbedding(x, pos);
        int total = Total(x.Count, "AddPositionEmbedding");
        if (total == 0)
            return;
        nint xP = x.Address, posP = pos.Address;
        int perItem = tokens * d;
        void** slots = stackalloc void*[4];
        byte* letters = stackalloc byte[4];
        var args = new KernelArgs(slots, letters, 4);
        args.Add(&xP);
        args.Add(&posP);
        args.Add(&perItem);
        args.Add(&total);
        _modules.Launch(Kernel.AddPositionEmbedding, _type, ElementwiseGrid(total), ElementwiseBlock, 0, args);
    }

    public void TimestepEmbedding(Tensor t, int frequencyShift, Tensor y)
    {
        OnDevice("TimestepEmbedding", t);
        Activations("TimestepEmbedding", y);
        var (batch, half) = Check.TimestepEmbedding(t, frequencyShift, y);
        int total = Total((long)batch * half, "TimestepEmbedding");   // one thread per (b, i): cos and sin
        if (total == 0)
            return;
        nint tP = t.Address, yP = y.Address;
        void** slots = stackalloc void*[5];
        byte* letters = stackalloc byte[5];
        var args = new KernelArgs(slots, letters, 5);
        args.Add(&tP);
        args.Add(&yP);
        args.Add(&half);
        args.Add(&frequencyShift);
        args.Add(&total);
        _modules.Launch(Kernel.TimestepEmbedding, _type, ElementwiseGrid(total), ElementwiseBlock, 0, args);
    }

    /// <summary>The ids stay on the device (checking them would need a synchronizing download); an id outside
    /// [0, V) yields a NaN row instead of an out-of-bounds read (embedding.cu).</summary>
    public void EmbeddingLookup(Tensor table, Tensor ids, Tensor y)
    {
        Activations("EmbeddingLookup", table, y);
        OnDevice("EmbeddingLookup", ids);
        var (vocab, d, _) = Check.EmbeddingLookup(table, ids, y);
        Total(table.Count, "EmbeddingLookup");
        int total = Total(y.Count, "EmbeddingLookup");
        if (total == 0)
            return;
        nint tableP = table.Address, idsP = ids.Address, yP = y.Address;
        void** slots = stackalloc void*[6];
        byte* letters = stackalloc byte[6];
        var args = new KernelArgs(slots, letters, 6);
        args.Add(&tableP);
        args.Add(&idsP);
        args.Add(&yP);
        args.Add(&vocab);
        args.Add(&d);
        args.Add(&total);
        _modules.Launch(Kernel.EmbeddingLookup, _type, ElementwiseGrid(total), ElementwiseBlock, 0, args);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // sampling.cu

    public void GuidanceCombine(Tensor output, int guidedChannels, float scale, Tensor y)
    {
        Activations("GuidanceCombine", output, y);
        var (n, c, _) = Check.GuidanceCombine(output, guidedChannels, y);
        Total(output.Count, "GuidanceCombine");
        int total = (int)y.Count;
        if (total == 0)
            return;
        int plane = output.Dim(2) * output.Dim(3), item = c * plane, guided = guidedChannels * plane;
        nint outP = output.Address, yP = y.Address;
        void** slots = stackalloc void*[6];
        byte* letters = stackalloc byte[6];
        var args = new KernelArgs(slots, letters, 6);
        args.Add(&outP);
        args.Add(&yP);
        args.Add(&item);
        args.Add(&guided);
        args.Add(&scale);
        args.Add(&total);
        _modules.Launch(Kernel.GuidanceCombine, _type, ElementwiseGrid(total), ElementwiseBlock, 0, args);
    }

    public void DdimStep(Tensor x, Tensor modelOutput, in DdimCoefficients c, Tensor? noise)
    {
        Activations("DdimStep", x, modelOutput);
        if (noise is not null)
            Activations("DdimStep", noise);
        var (_, channels, plane) = Check.SamplerShapes(x, modelOutput, noise, 1, "DdimStep");
        if (noise is null && c.E != 0)
            throw new ArgumentException("DdimStep: noise is required when the noise coefficient is not zero");
        Total(modelOutput.Count, "DdimStep");
        int total = (int)x.Count;
        if (total == 0)
            return;
        nint xP = x.Address, outP = modelOutput.Address, noiseP = noise?.Address ?? 0;
        int item = channels * plane, outItem = modelOutput.Dim(1) * plane, rederive = c.RederiveEps ? 1 : 0;
        float a = c.A, b = c.B, cc = c.C, d = c.D, e = c.E;
        void** slots = stackalloc void*[12];
        byte* letters = stackalloc byte[12];
        var args = new KernelArgs(slots, letters, 12);
        args.Add(&xP);
        args.Add(&outP);
        args.Add(&noiseP);
        args.Add(&item);
        args.Add(&outItem);
        args.Add(&a);
        args.Add(&b);
        args.Add(&cc);
        args.Add(&d);
        args.Add(&e);
        args.Add(&rederive);
        args.Add(&total);
        _modules.Launch(Kernel.DdimStep, _type, ElementwiseGrid(total), ElementwiseBlock, 0, args);
    }

    public void AncestralStep(Tensor x, Tensor modelOutput, in AncestralCoefficients c, Tensor? noise)
    {
        Activations("AncestralStep", x, modelOutput);
        if (noise is not null)
            Activations("AncestralStep", noise);
        var (_, channels, plane) = Check.SamplerShapes(x, modelOutput, noise, 2, "AncestralStep", exactChannels: true);
        if (noise is null && c.Nonzero != 0)
            throw new ArgumentException("AncestralStep: noise is required except at the last step");
        Total(modelOutput.Count, "AncestralStep");
        int total = (int)x.Count;
        if (total == 0)
            return;
        nint xP = x.Address, outP = modelOutput.Address, noiseP = noise?.Address ?? 0;
        int item = channels * plane;
        float a = c.A, b = c.B, c1 = c.C1, c2 = c.C2, minLog = c.MinLog, maxLog = c.MaxLog, nonzero = c.Nonzero;
        void** slots = stackalloc void*[12];
        byte* letters = stackalloc byte[12];
        var args = new KernelArgs(slots, letters, 12);
        args.Add(&xP);
        args.Add(&outP);
        args.Add(&noiseP);
        args.Add(&item);
        args.Add(&a);
        args.Add(&b);
        args.Add(&c1);
        args.Add(&c2);
        args.Add(&minLog);
        args.Add(&maxLog);
        args.Add(&nonzero);
        args.Add(&total);
        _modules.Launch(Kernel.AncestralStep, _type, ElementwiseGrid(total), ElementwiseBlock, 0, args);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // random.cu

    /// <summary>y is F32 (the IOps contract) or the activation type (a sampler keeping its noise in that type).</summary>
    public void RandomNormal(Tensor y, ulong seed, ulong offset)
    {
        OnDevice("RandomNormal", y);
        if (y.DType != DType.F32 && y.DType != _type)
            throw new ArgumentException($"RandomNormal: y must be F32 or {_type}, got {y}");
        int n = Total(y.Count, "RandomNormal");
        if (n == 0)
            return;
        nint yP = y.Address;
        void** slots = stackalloc void*[4];
        byte* letters = stackalloc byte[4];
        var args = new KernelArgs(slots, letters, 4);
        args.Add(&yP);
        args.Add(&seed);
        args.Add(&offset);
        args.Add(&n);
        _modules.Launch(Kernel.RandomNormal, y.DType, ElementwiseGrid(n), ElementwiseBlock, 0, args);
    }

    // ---------------------------------------------------------------------------------------------------------------

    /// <summary>Blocks of <see cref="ElementwiseBlock"/> threads for a grid-stride loop over <paramref name="total"/>
    /// elements: one per 256 elements, at most one full wave (8 blocks per SM).</summary>
    private uint ElementwiseGrid(long total) => (uint)Math.Min((total + ElementwiseBlock - 1) / ElementwiseBlock, _maxElementwiseBlocks);

    /// <summary>The element count as the kernels' 32-bit index range (unsigned loops: total + stride cannot wrap).</summary>
    private static int Total(long count, string op) => count <= int.MaxValue ? (int)count
        : throw new ArgumentException($"{op}: {count} elements exceed the CUDA kernels' 32-bit indexing (at most 2^31 − 1)");

    /// <summary>Activations: on this device and in the backend's storage type.</summary>
    public void Activations(string op, params ReadOnlySpan<Tensor> tensors)
    {
        foreach (var t in tensors)
        {
            OnDevice(op, t);
            if (t.DType != _type)
                throw new ArgumentException($"{op}: expected {_type} tensors (the backend's activation type), got {t}");
        }
    }

    public void OnDevice(string op, Tensor t)
    {
        if (!ReferenceEquals(t.Device, _device))
            throw new ArgumentException($"{op}: {t} does not live on this CUDA device ({_device.Name})");
    }
}
