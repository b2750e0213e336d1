using BlockDance.Dit;
using BlockDance.Kernels;
using BlockDance.Runtime;
using BlockDance.Runtime.Safetensors;

namespace BlockDance.Tests.Model;

/// <summary>Runs a checkpoint on a dump's forward inputs on any backend and returns the output and every block's output.</summary>
internal static class DumpForward
{
    /// <param name="numerics">Null: the numerics of the dump's layout.</param>
    public static (float[] Output, List<float[]> Blocks, DitConfig Config) Run(IOps ops, string weights, string dumpName, DitNumerics? numerics = null)
    {
        using var dump = SafetensorsFile.Open(Fixtures.Path(dumpName));
        numerics ??= DitNumerics.For(dump.Metadata["layout"] == "diffusers" ? DitLayout.Diffusers : DitLayout.Original);
        using var checkpoint = DitCheckpoint.Open(Fixtures.Path(weights), numerics: numerics);
        using var model = DitModel.Load(checkpoint, ops);
        var shape = dump["inputs.x"].ShapeToArray();
        int batch = shape[0];
        using var x = ops.Device.FromFloats(dump.ReadFloat32("inputs.x"), ops.ActivationType, shape);
        using var t = ops.Device.FromHost<float>(dump.ReadFloat32("inputs.t"), DType.F32, batch);
        using var y = ops.Device.FromHost<int>(dump.ReadInt64("inputs.y").Select(v => (int)v).ToArray(), DType.I32, batch);
        using var output = ops.Device.Allocate(ops.ActivationType, batch, model.Config.OutChannels, shape[2], shape[3]);
        using var activations = model.CreateActivations(batch, shape[2], shape[3]);
        var recorder = new Recorder();
        model.Forward(x, t, y, output, activations, recorder);
        return (output.ToFloatArray(), recorder.Outputs, model.Config);
    }

    private sealed class Recorder : IBlockObserver
    {
        public List<float[]> Outputs { get; } = [];
        public void OnBlockOutput(int block, Tensor x) => Outputs.Add(x.ToFloatArray());
    }
}
