using BlockDance.Cli.Commands;
using BlockDance.Dit;
using BlockDance.Dit.Caching;
using BlockDance.Dit.Pipeline;
using BlockDance.Runtime.Cuda;
using BlockDance.Runtime.Safetensors;

namespace BlockDance.Cli;

/// <summary>
/// Where a command writes: standard output for results, standard error for progress and errors; and the token Ctrl+C
/// cancels (commands check it between sampling steps and before writing).
/// </summary>
public sealed record Console2(TextWriter Out, TextWriter Err, bool Interactive)
{
    /// <summary>Cancelled by Ctrl+C (SIGINT); none by default.</summary>
    public CancellationToken Cancellation { get; init; }
}

/// <summary>A subcommand of <c>blockdance</c>.</summary>
public interface ICommand
{
    CommandSpec Spec { get; }

    /// <returns>The process exit code.</returns>
    int Run(ParsedArgs args, Console2 console);
}

public static class Program
{
    public static IReadOnlyList<ICommand> Commands { get; } =
    [
        new GenerateCommand(),
        new ParityCommand(),
        new InfoCommand(),
        new PlanCommand(),
        new CompareCommand(),
        new AnalyzeCommand(),
        new CalibrateCommand(),
        new BenchCommand(),
        new TestOpsCommand(),
    ];

    /// <summary>
    /// The process: the first Ctrl+C cancels the command between two steps (exit code 130, no output written); a
    /// second one ends the process at once.
    /// </summary>
    public static int Main(string[] args)
    {
        using var cancel = new CancellationTokenSource();
        void OnCancel(object? sender, ConsoleCancelEventArgs e)
        {
            if (cancel.IsCancellationRequested)
                return;             // the second Ctrl+C: let the default handler end the process
            e.Cancel = true;
            cancel.Cancel();
        }
        Console.CancelKeyPress += OnCancel;
        try
        {
            return Run(args, new Console2(Console.Out, Console.Error, !Console.IsErrorRedirected) { Cancellation = cancel.Token });
        }
        finally
        {
            Console.CancelKeyPress -= OnCancel;
        }
    }

    /// <summary>The exit code of a cancelled command (128 + SIGINT, as shells report an interrupted program).</summary>
    public const int CancelledExitCode = 130;

    /// <summary>
    /// Runs the tool. Exit codes: 0 success; 1 failure (a missing or bad input file, an unwritable output, a parity
    /// mismatch, a device error); 2 usage error (an unknown option, a bad value, an output whose extension does not
    /// match its kind, a folder given as a file); 130 cancelled by Ctrl+C.
    /// Expected failures print one "error:" message and no stack trace; set BLOCKDANCE_DEBUG=1 to see it.
    /// </summary>
    public static int Run(IReadOnlyList<string> args, Console2 console)
    {
        if (args.Count == 0 || args[0] is "--help" or "-h" or "help")
        {
            console.Out.Write(Usage());
            return args.Count == 0 ? 2 : 0;
        }
        if (args[0] == "--version")
        {
            console.Out.WriteLine($"blockdance {typeof(Program).Assembly.GetName().Version}");
            return 0;
        }
        var command = Commands.FirstOrDefault(c => c.Spec.Name == args[0]);
        if (command is null)
        {
            console.Err.WriteLine($"error: unknown command '{args[0]}' (commands: {string.Join(", ", Commands.Select(c => c.Spec.Name))}; see 'blockdance --help')");
            return 2;
        }
        try
        {
            var parsed = command.Spec.Parse(args.Skip(1).ToList());
            if (parsed.IsHelp)
            {
                console.Out.Write(command.Spec.Help());
                return 0;
            }
            return command.Run(parsed, console);
        }
        catch (UsageException e)
        {
            console.Err.WriteLine($"error: {e.Message}");
            return 2;
        }
        catch (OperationCanceledException) when (console.Cancellation.IsCancellationRequested)
        {
            if (console.Interactive)
                console.Err.WriteLine();
            console.Err.WriteLine("cancelled: stopped between two steps; no output was written");
            return CancelledExitCode;
        }
        catch (Exception e) when (IsExpected(e))
        {
            console.Err.WriteLine($"error: {e.Message}");
            if (Environment.GetEnvironmentVariable("BLOCKDANCE_DEBUG") == "1")
                console.Err.WriteLine(e);
            return 1;
        }
        catch (Exception e)
        {
            console.Err.WriteLine($"internal error: {e.GetType().Name}: {e.Message}");
            if (Environment.GetEnvironmentVariable("BLOCKDANCE_DEBUG") == "1")
                console.Err.WriteLine(e);
            else
                console.Err.WriteLine("(set BLOCKDANCE_DEBUG=1 for the stack trace, and please report it)");
            return 1;
        }
    }

    private static bool IsExpected(Exception e) => e is Runtime.BlockDanceException or SafetensorsException or CheckpointException or PlanException
        or NonFiniteResultException or IOException or UnauthorizedAccessException or ArgumentException
        or DllNotFoundException or EntryPointNotFoundException or NotSupportedException or InvalidDataException
        or CudaException or CublasException or NvrtcException or Runtime.Cuda.CudaUnavailableException;

    private static string Usage()
    {
        var sb = new System.Text.StringBuilder();
        sb.AppendLine("usage: blockdance <command> [options]");
        sb.AppendLine();
        sb.AppendLine("Diffusion Transformer inference with training-free feature caching (BlockDance).");
        sb.AppendLine();
        sb.AppendLine("commands:");
        foreach (var c in Commands)
            sb.AppendLine($"  {c.Spec.Name,-10} {c.Spec.Summary.Split('\n')[0]}");
        sb.AppendLine();
        sb.AppendLine("Run 'blockdance <command> --help' for the options of a command.");
        sb.AppendLine("Exit codes: 0 success, 1 failure, 2 usage error, 130 cancelled (Ctrl+C between steps; nothing written).");
        return sb.ToString();
    }
}
