using System.Globalization;
using BlockDance.Kernels;
using BlockDance.Kernels.Harness;
using BlockDance.Runtime;
using BlockDance.Runtime.Cuda;

namespace BlockDance.Cli.Commands;

/// <summary>
/// <c>blockdance test-ops</c>: the op harness's check mode, after ggml's test-backend-ops. Every op (or <c>--op</c>) ×
/// every backend (cpu; cuda-emu and cuda in f32, f16, bf16) × its test shapes (or <c>--shape</c>) against the naive
/// reference, one line per check; a backend that cannot open (cuda without a GPU) is reported SKIPPED. The xunit op tests
/// run the same cases. Exit code 1 when a check fails.
/// </summary>
public sealed class TestOpsCommand : ICommand
{
    public CommandSpec Spec { get; } = new CommandSpec("test-ops",
            "Check every op against the naive reference on every backend and storage type (guard regions, NaN/Inf, a\n" +
            "tolerance per type), at the ops' test shapes or --shape. 'cuda' is SKIPPED without a GPU. Exit code 1 if a\n" +
            "check fails. 'blockdance bench ops' times the same cases.")
        .Option("--op", "NAME[,NAME]", "only these ops (see --list)")
        .Option("--shape", "N,N,...", "only this shape, numbers as the op's shape says (needs one --op)")
        .Option("--device", "LIST", "backends", "cpu,cuda-emu,cuda")
        .Option("--dtype", "LIST", "storage types on the CUDA devices (the cpu device is f32 only)", "f32,f16,bf16")
        .Flag("--list", "list the ops and the meaning of their shape numbers");

    public int Run(ParsedArgs args, Console2 console)
    {
        var ci = CultureInfo.InvariantCulture;
        if (args.Flag("--list"))
        {
            foreach (var op in OpCases.All)
                console.Out.WriteLine(string.Create(ci, $"{op.Name,-24} {op.Shape,-22} bench {OpHarness.Format(op.BenchShape)}"));
            return 0;
        }
        var (cases, shape) = OpBench.Select(args);
        var devices = List(args, "--device");
        var types = List(args, "--dtype").Select(t => Parse(t)).ToList();
        int passed = 0, failed = 0, skipped = 0;
        foreach (string device in devices)
            foreach (var type in device == "cpu" ? [DType.F32] : types)
            {
                IOps ops;
                try
                {
                    ops = Backends.Open(device, 0, type);
                }
                catch (CudaUnavailableException e)
                {
                    console.Out.WriteLine($"SKIP  {device} {type.ShortName()}: {e.Message}");
                    skipped += cases.Sum(c => shape is null ? c.TestShapes.Length : 1);
                    continue;
                }
                catch (ArgumentException e)
                {
                    throw new UsageException($"--device: {e.Message}");
                }
                using (ops)
                    foreach (var op in cases)
                        foreach (var s in shape is null ? op.TestShapes : [shape])
                        {
                            OpCheckResult r;
                            try
                            {
                                r = OpHarness.Check(ops, op, s);
                            }
                            catch (ArgumentException e) when (shape is not null)
                            {
                                throw new UsageException($"--shape: {e.Message}");
                            }
                            string status = r.Passed ? "OK  " : "FAIL";
                            console.Out.WriteLine(string.Create(ci,
                                $"{status}  {op.Name,-24} {OpHarness.Format(s),-22} {device,-8} {type.ShortName(),-4}  {(r.Passed ? $"max rel {r.Worst:E2} (tol {OpHarness.Tolerance(type):E0})" : r.Message)}"));
                            if (r.Passed)
                                passed++;
                            else
                                failed++;
                        }
            }
        console.Out.WriteLine($"{passed} passed, {failed} failed, {skipped} skipped");
        return failed > 0 ? 1 : 0;
    }

    private static List<string> List(ParsedArgs args, string name) =>
        (args.String(name) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => s.ToLowerInvariant()).ToList();

    private static DType Parse(string type)
    {
        try
        {
            return DTypes.ParseActivationType(type);
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"--dtype: {e.Message}");
        }
    }
}
