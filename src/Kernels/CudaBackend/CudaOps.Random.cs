using BlockDance.Runtime;

namespace BlockDance.Kernels.Cuda;

// random.cu: Philox normals.
public sealed partial class CudaOps
{
    [Kernel(KernelModule.Random, "random_normal")]
    private struct RandomNormalArgs : IKernelArgs
    {
        public nint Y;
        public ulong Seed, Offset;
        public int N;
    }

    /// <summary>Fills y (F32, or the activation type: a sampler keeping its noise in that type) with the same Philox
    /// normals as the CPU device.</summary>
    public void RandomNormal(Tensor y, ulong seed, ulong offset)
    {
        OnDevice("RandomNormal", y);
        if (y.DType != DType.F32 && y.DType != ActivationType)
            throw new ArgumentException($"RandomNormal: y must be F32 or {ActivationType}, got {y}");
        int n = Total(y.Count, "RandomNormal");
        if (n > 0)
            _loader.Launch(y.DType, ElementwiseGrid(n), ElementwiseBlock, 0, new RandomNormalArgs { Y = y.Address, Seed = seed, Offset = offset, N = n });
    }
}
