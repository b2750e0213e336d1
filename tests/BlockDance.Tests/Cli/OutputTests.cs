using System.Diagnostics;
using BlockDance.Runtime.IO;
using BlockDance.Runtime.Safetensors;
using Xunit;

namespace BlockDance.Tests.Cli;

/// <summary>
/// Where outputs go (issue 11 part 6): the kind follows the extension, links are written through, devices and pipes
/// are refused and never replaced, an unwritable destination fails before any step, missing inputs name the option.
/// </summary>
[Collection(nameof(ProcessWideSettings))]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class OutputTests
{
    private static (int Code, string Out, string Err) Run(params string[] args) => CliTests.Run(args);

    private static string[] Generate(params string[] more) =>
        ["generate", "--weights", Fixtures.TinyOriginal, "--labels", "1,2", "--steps", "4", .. more];

    [Theory]
    [InlineData("--out", "x.png", "--out '{0}': the latents file is written as safetensors; give a name ending in .safetensors")]
    [InlineData("--out", "x", "give a name ending in .safetensors")]
    [InlineData("--report", "r.txt", "--report '{0}': the report is written as json; give a name ending in .json")]
    [InlineData("--png", "g.jpg", "--png '{0}': the image grid is written as png")]
    public void An_output_whose_extension_is_not_its_kind_is_a_usage_error(string option, string name, string message)
    {
        using var dir = new Fixtures.TempDir();
        string path = dir.File(name);
        var (code, _, err) = Run(option == "--out" ? Generate(option, path) : Generate("--out", dir.File("l.safetensors"), option, path));
        Assert.Equal(2, code);
        Assert.Contains(string.Format(System.Globalization.CultureInfo.InvariantCulture, message, path), err, StringComparison.Ordinal);
        Assert.DoesNotContain("step ", err, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Root));
    }

    [Fact]
    public void A_symlinked_output_is_written_through_and_stays_a_link()
    {
        using var dir = new Fixtures.TempDir();
        string target = dir.File("real.safetensors"), link = dir.File("link.safetensors");
        File.WriteAllText(target, "old");
        File.SetUnixFileMode(target, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        File.CreateSymbolicLink(link, "real.safetensors");   // relative, as `ln -s` makes them
        var (code, _, err) = Run(Generate("--quiet", "--out", link));
        Assert.True(code == 0, err);
        Assert.Equal("real.safetensors", new FileInfo(link).LinkTarget);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, File.GetUnixFileMode(target));
        using (var f = SafetensorsFile.Open(target))
            Assert.Equal([2, 4, 8, 8], f["latent"].ShapeToArray());
        Assert.Equal(["link.safetensors", "real.safetensors"], Directory.GetFileSystemEntries(dir.Root).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        // A link whose target does not exist yet: the target is created, as a shell's `>` would.
        string dangling = dir.File("dangling.json"), later = dir.File("sub-target.json");
        File.CreateSymbolicLink(dangling, later);
        AtomicFile.WriteText(dangling, w => w.Write("{}"));
        Assert.Equal(later, new FileInfo(dangling).LinkTarget);
        Assert.Equal("{}", File.ReadAllText(later));
    }

    [Fact]
    public void A_fifo_is_refused_before_any_step_and_stays_a_fifo()
    {
        using var dir = new Fixtures.TempDir();
        string fifo = dir.File("pipe.safetensors");
        Exec("mkfifo", fifo);
        var (code, _, err) = Run(Generate("--out", fifo));
        Assert.Equal(1, code);
        Assert.Contains("--out: '" + fifo + "' is a named pipe (FIFO), not a regular file", err, StringComparison.Ordinal);
        Assert.DoesNotContain("step ", err, StringComparison.Ordinal);
        Assert.Equal(FileKind.Fifo, FileKinds.Of(fifo));
        Assert.Throws<IOException>(() => AtomicFile.WriteAllBytes(fifo, [1, 2, 3]));
        Assert.Equal(FileKind.Fifo, FileKinds.Of(fifo));
        Assert.Single(Directory.GetFileSystemEntries(dir.Root));   // no temporary file left
    }

    [Fact]
    public void A_device_is_refused_and_never_replaced()
    {
        using var dir = new Fixtures.TempDir();
        // A null device of our own (root may make one), so that a failure of this test cannot replace /dev/null itself.
        string device = dir.File("null-device");
        bool own = TryExec("mknod", device, "c", "1", "3");
        if (!own)
        {
            if (Environment.UserName == "root")
                Assert.Skip("mknod is not permitted here, and running as root the test must not risk /dev/null");
            device = "/dev/null";   // without root, nothing can replace it
        }
        Assert.Equal(FileKind.CharacterDevice, FileKinds.Of(device));
        string link = dir.File("out.safetensors");
        File.CreateSymbolicLink(link, device);
        var (code, _, err) = Run(Generate("--out", link));
        Assert.Equal(1, code);
        Assert.Contains("is a character device, not a regular file", err, StringComparison.Ordinal);
        Assert.DoesNotContain("step ", err, StringComparison.Ordinal);
        var e = Assert.Throws<IOException>(() => AtomicFile.WriteAllBytes(device, [1]));
        Assert.Contains("character device", e.Message, StringComparison.Ordinal);
        Assert.Throws<IOException>(() => AtomicFile.CheckWritable(device));
        Assert.Equal(FileKind.CharacterDevice, FileKinds.Of(device));
        Assert.Equal(FileKind.SymbolicLink, FileKinds.Of(link, followLinks: false));
    }

    [Fact]
    public void An_unwritable_destination_fails_before_any_step()
    {
        using var dir = new Fixtures.TempDir();
        // Under a regular file: no folder can exist there, root or not.
        File.WriteAllText(dir.File("plain"), "");
        var (code, _, err) = Run(Generate("--out", dir.File("plain/x.safetensors")));
        Assert.Equal(1, code);
        Assert.Contains("--out '" + dir.File("plain/x.safetensors") + "': cannot create its folder", err, StringComparison.Ordinal);
        Assert.DoesNotContain("step ", err, StringComparison.Ordinal);

        // A read-only folder. Root ignores permission bits, so there procfs (which takes no new files) stands in.
        string readOnly = dir.File("ro");
        Directory.CreateDirectory(readOnly);
        File.SetUnixFileMode(readOnly, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        if (CanCreateFileIn(readOnly))
            readOnly = "/proc";
        string report = Path.Combine(readOnly, "r.json");
        (code, _, err) = Run(Generate("--out", dir.File("l.safetensors"), "--report", report));
        Assert.Equal(1, code);
        Assert.Contains("--report: cannot write '" + report + "'", err, StringComparison.Ordinal);
        Assert.DoesNotContain("step ", err, StringComparison.Ordinal);
        Assert.False(File.Exists(dir.File("l.safetensors")));

        (code, _, err) = Run("analyze", "--weights", Fixtures.TinyOriginal, "--steps", "3", "--out", Path.Combine(readOnly, "analysis"));
        Assert.Equal(1, code);
        Assert.Contains("--out '" + Path.Combine(readOnly, "analysis") + "': cannot create the folder", err, StringComparison.Ordinal);
        File.SetUnixFileMode(dir.File("ro"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    [Theory]
    [InlineData("generate --weights MISSING", "error: --weights: no such file: MISSING")]
    [InlineData("generate --weights DIR", "error: --weights: 'DIR' is a folder, not a file")]
    [InlineData("parity --weights W --dump MISSING", "error: --dump: no such file: MISSING")]
    [InlineData("parity --weights W --dump DIR", "error: --dump: 'DIR' is a folder, not a file")]
    [InlineData("info MISSING", "error: info FILE: no such file: MISSING")]
    [InlineData("plan --weights DIR", "error: --weights: 'DIR' is a folder, not a file")]
    [InlineData("compare --weights MISSING", "error: --weights: no such file: MISSING")]
    [InlineData("generate --cache plan:MISSING", "error: --cache plan:FILE: no such file: MISSING")]
    public void A_missing_file_or_a_folder_names_the_option_and_the_path(string args, string message)
    {
        using var dir = new Fixtures.TempDir();
        string missing = dir.File("x.safetensors");
        string Fill(string s) => s.Replace("MISSING", missing, StringComparison.Ordinal).Replace("DIR", dir.Root, StringComparison.Ordinal)
            .Replace(" W ", " " + Fixtures.TinyOriginal + " ", StringComparison.Ordinal);
        var (code, _, err) = Run(Fill(args).Split(' '));
        Assert.Equal(Fill(message), err.TrimEnd('\n'));
        Assert.Equal(args.Contains("DIR", StringComparison.Ordinal) ? 2 : 1, code);   // a folder for a file is a usage error
        Assert.DoesNotContain("denied", err, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData("plan --steps ten")]
    [InlineData("info A B")]
    [InlineData("compare --repeat 0")]
    [InlineData("bench frobnicate")]
    [InlineData("bench forward --out t.md")]
    [InlineData("parity --dump D")]
    [InlineData("generate --device tpu")]
    [InlineData("analyze --sampler heun")]
    [InlineData("generate --numerics mine")]
    [InlineData("plan --depth 4 --weights W")]
    public void Usage_errors_exit_2_in_every_command(string args)
    {
        var (code, _, err) = Run(args.Replace(" W", " " + Fixtures.TinyOriginal, StringComparison.Ordinal).Split(' '));
        Assert.Equal(2, code);
        Assert.StartsWith("error: ", err, StringComparison.Ordinal);
        Assert.Single(err.TrimEnd('\n').Split('\n'));
    }

    [Fact]
    public void Compare_analyze_info_and_plan_default_to_the_bundled_model()
    {
        var (code, info, err) = Run("info");
        Assert.True(code == 0, err);
        Assert.Contains("dit-shapes-32.safetensors", info, StringComparison.Ordinal);
        Assert.Contains("depth 12", info, StringComparison.Ordinal);
        var (pc, plan, _) = Run("plan", "--steps", "50");
        Assert.Equal(0, pc);
        Assert.Contains("boundary 9 of 12 blocks", plan, StringComparison.Ordinal);   // BlockDance's boundary for 12 blocks
        var (cc, compare, cerr) = Run("compare", "--labels", "3", "--steps", "4", "--quiet");
        Assert.True(cc == 0, cerr);
        Assert.Contains("policy        blockdance:n=2", compare, StringComparison.Ordinal);
        using var dir = new Fixtures.TempDir();
        var (ac, analyze, aerr) = Run("analyze", "--labels", "3", "--steps", "3", "--quiet", "--out", dir.Root);
        Assert.True(ac == 0, aerr);
        Assert.Contains("× 12 blocks", analyze, StringComparison.Ordinal);
    }

    [Fact]
    public void A_cancelled_command_exits_130_and_writes_nothing()
    {
        using var dir = new Fixtures.TempDir();
        var o = new StringWriter();
        var e = new StringWriter();
        var console = new BlockDance.Cli.Console2(o, e, Interactive: false) { Cancellation = new CancellationToken(canceled: true) };
        int code = BlockDance.Cli.Program.Run(Generate("--out", dir.File("l.safetensors"), "--report", dir.File("r.json")), console);
        Assert.Equal(130, code);
        Assert.Contains("cancelled", e.ToString(), StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Root));
    }

    [Fact]
    public async Task Ctrl_C_in_the_real_process_stops_between_steps_with_exit_130_and_no_files()
    {
        using var dir = new Fixtures.TempDir();
        string dll = Path.Combine(AppContext.BaseDirectory, "blockdance.dll");
        // Long enough that it cannot finish first: 1000 steps of 8 bundled images (several seconds per 100 steps).
        // Started through python3 (a test dependency), which restores SIGINT's default action before it execs dotnet: a
        // test run started in the background inherits SIGINT as ignored, and .NET then (rightly) never handles Ctrl+C.
        var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardError = true, RedirectStandardOutput = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])");
        psi.ArgumentList.Add("dotnet");
        foreach (var a in new[] { dll, "generate", "--per-class", "1", "--steps", "1000", "--threads", "1",
                     "--out", dir.File("l.safetensors"), "--png", dir.File("g.png"), "--report", dir.File("r.json") })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        string? line;
        while ((line = p.StandardError.ReadLine()) is not null && !line.Contains("step 100/1000", StringComparison.Ordinal))
        {
        }
        Assert.NotNull(line);   // the first progress line: sampling is under way
        Exec("kill", "-INT", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        string rest = p.StandardError.ReadToEnd();
        Assert.True(p.WaitForExit(60_000), "the process did not stop after SIGINT");
        Assert.Equal(130, p.ExitCode);
        Assert.Contains("cancelled: stopped between two steps; no output was written", rest, StringComparison.Ordinal);
        Assert.DoesNotContain("step 1000/1000", rest, StringComparison.Ordinal);
        Assert.Equal("", await output);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Root));
    }

    private static bool CanCreateFileIn(string folder)
    {
        string probe = Path.Combine(folder, "probe");
        try
        {
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
            return true;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static void Exec(string program, params string[] args)
    {
        if (!TryExec(program, args))
            throw new InvalidOperationException($"{program} {string.Join(' ', args)} failed");
    }

    private static bool TryExec(string program, params string[] args)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardError = true };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        p.StandardError.ReadToEnd();
        p.WaitForExit();
        return p.ExitCode == 0;
    }
}
