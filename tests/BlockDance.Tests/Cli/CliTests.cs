using System.Diagnostics;
using BlockDance.Cli;
using BlockDance.Runtime.Safetensors;
using Xunit;

namespace BlockDance.Tests.Cli;

/// <summary>Runs alone: commands set process-wide thread counts, which change OpenBLAS's summation order.</summary>
[Collection(nameof(ProcessWideSettings))]
public sealed class CliTests
{
    internal static (int Code, string Out, string Err) Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = Program.Run(args, new Console2(o, e, Interactive: false));
        return (code, o.ToString(), e.ToString());
    }

    [Fact]
    public void Generate_twice_with_one_seed_gives_identical_bytes()
    {
        using var dir = new Fixtures.TempDir();
        string a = dir.File("a.safetensors"), b = dir.File("b.safetensors"), c = dir.File("c.safetensors");
        string[] common = ["generate", "--weights", Fixtures.TinyOriginal, "--labels", "1,4,9", "--steps", "8", "--seed", "123", "--quiet"];
        Assert.Equal(0, Run([.. common, "--out", a]).Code);
        Assert.Equal(0, Run([.. common, "--out", b]).Code);
        Assert.Equal(File.ReadAllBytes(a), File.ReadAllBytes(b));
        Assert.Equal(0, Run([.. common[..^2], "124", "--quiet", "--out", c]).Code);
        Assert.NotEqual(File.ReadAllBytes(a), File.ReadAllBytes(c));
        using var f = SafetensorsFile.Open(a);
        Assert.Equal([3, 4, 8, 8], f["latent"].ShapeToArray());
        Assert.Equal([1L, 4, 9], f.ReadInt64("labels"));
        Assert.Equal("123", f.Metadata["seed"]);
    }

    [Fact]
    public void Thread_count_changes_only_the_summation_order()
    {
        // OpenBLAS partitions a GEMM differently for 1 and 2 threads, so the bytes may differ; the values must not.
        using var dir = new Fixtures.TempDir();
        string[] common = ["generate", "--weights", Fixtures.TinyOriginal, "--labels", "2,3", "--steps", "6", "--quiet"];
        Assert.Equal(0, Run([.. common, "--threads", "1", "--out", dir.File("1.safetensors")]).Code);
        Assert.Equal(0, Run([.. common, "--threads", "2", "--out", dir.File("2.safetensors")]).Code);
        using var one = SafetensorsFile.Open(dir.File("1.safetensors"));
        using var two = SafetensorsFile.Open(dir.File("2.safetensors"));
        var (rel, report) = Reference.Compare(one.ReadFloat32("latent"), two.ReadFloat32("latent"));
        Assert.True(rel < 1e-5, report);
    }

    [Fact]
    public void Generate_writes_a_report_and_progress()
    {
        using var dir = new Fixtures.TempDir();
        var (code, _, err) = Run("generate", "--weights", Fixtures.TinyOriginal, "--steps", "10", "--cache", "blockdance:n=2",
            "--out", dir.File("x.safetensors"), "--report", dir.File("r.json"));
        Assert.Equal(0, code);
        Assert.Contains("step 10/10", err, StringComparison.Ordinal);
        Assert.Contains("FFFFCRCRCF", err, StringComparison.Ordinal);
        string json = File.ReadAllText(dir.File("r.json"));
        Assert.Contains("\"plan\": \"FFFFCRCRCF\"", json, StringComparison.Ordinal);
        Assert.Contains("\"blocks_skipped\": 6", json, StringComparison.Ordinal);  // 2 reuse steps × boundary 3
    }

    [Fact]
    public void Parity_passes_on_the_committed_dump_and_exits_1_on_a_corrupted_one()
    {
        var (ok, output, _) = Run("parity", "--weights", Fixtures.TinyOriginal, "--dump", Fixtures.Path("dit_tiny_original.dump.safetensors"));
        Assert.Equal(0, ok);
        Assert.Contains("all 6 tensors pass", output, StringComparison.Ordinal);

        using var dir = new Fixtures.TempDir();
        string corrupted = dir.File("corrupted.dump.safetensors");
        // Flip one value of block 2's reference output.
        CopyDump(Fixtures.Path("dit_tiny_original.dump.safetensors"), corrupted, "outputs.blocks.2", v => { v[17] += 0.5f; });
        var (bad, badOut, _) = Run("parity", "--weights", Fixtures.TinyOriginal, "--dump", corrupted);
        Assert.Equal(1, bad);
        Assert.Contains("outputs.blocks.2", badOut.Split('\n').Single(l => l.StartsWith("outputs.", StringComparison.Ordinal) && l.Contains("FAIL", StringComparison.Ordinal)), StringComparison.Ordinal);

        string truncated = dir.File("truncated.dump.safetensors");
        var bytes = File.ReadAllBytes(Fixtures.Path("dit_tiny_original.dump.safetensors"));
        File.WriteAllBytes(truncated, bytes[..(bytes.Length - 100)]);
        var (trunc, _, truncErr) = Run("parity", "--weights", Fixtures.TinyOriginal, "--dump", truncated);
        Assert.Equal(1, trunc);
        Assert.StartsWith("error: ", truncErr, StringComparison.Ordinal);
        Assert.Contains(truncated, truncErr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("generate --weights W --bogus 3", "unknown option '--bogus'")]
    [InlineData("generate --weights W --steps ten", "--steps 'ten' is not an integer")]
    [InlineData("generate --weights W --steps 0", "--steps 0 is out of range")]
    [InlineData("generate --weights W --sampler euler", "unknown sampler 'euler'")]
    [InlineData("generate --weights W --cache magic", "bad cache policy 'magic'")]
    [InlineData("generate --weights W --labels 1,x", "'x' is not an integer")]
    [InlineData("generate --weights W --steps", "needs a value")]
    [InlineData("frobnicate", "unknown command 'frobnicate'")]
    [InlineData("generate --weights W --labels 1,,2", "--labels: empty element in '1,,2'")]
    [InlineData("generate --weights W --eta 2", "--eta 2 is out of range [0, 1]")]
    [InlineData("generate --weights W --out /tmp", "--out '/tmp' is a directory")]
    public void Bad_usage_exits_2_with_one_line_and_no_stack_trace(string args, string message)
    {
        var (code, _, err) = Run(args.Replace("W", Fixtures.TinyOriginal, StringComparison.Ordinal).Split(' '));
        Assert.NotEqual(0, code);
        Assert.Single(err.TrimEnd('\n').Split('\n'));
        Assert.Contains(message, err, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", err, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_input_files_give_an_error_naming_the_file()
    {
        using var dir = new Fixtures.TempDir();
        string empty = dir.File("empty.safetensors");
        File.WriteAllBytes(empty, []);
        var (code, _, err) = Run("info", empty);
        Assert.Equal(1, code);
        Assert.Contains(empty, err, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", err, StringComparison.Ordinal);
        var (missing, _, err2) = Run("generate", "--weights", dir.File("nope.safetensors"), "--out", dir.File("o.safetensors"));
        Assert.Equal(1, missing);
        Assert.Contains("nope.safetensors", err2, StringComparison.Ordinal);
        Assert.False(File.Exists(dir.File("o.safetensors")));
    }

    [Fact]
    public void A_dump_missing_tensors_is_refused_before_any_work_naming_them()
    {
        using var dir = new Fixtures.TempDir();
        string broken = dir.File("broken.dump.safetensors");
        using (var f = SafetensorsFile.Open(Fixtures.Path("dit_tiny_original.dump.safetensors")))
        {
            var w = new SafetensorsWriter();
            foreach (var t in f.Tensors.Where(t => t.Name is not ("inputs.t" or "sample.out")))
                w.Add(t.Name, t.DType, t.ShapeToArray(), f.GetBytes(t.Name));
            foreach (var (k, v) in f.Metadata)
                w.SetMetadata(k, v);
            w.Save(broken);
        }
        var (code, _, err) = Run("parity", "--weights", Fixtures.TinyOriginal, "--dump", broken);
        Assert.Equal(1, code);
        Assert.Contains("'inputs.t' is missing", err, StringComparison.Ordinal);
        Assert.Contains("'sample.out' is missing", err, StringComparison.Ordinal);
        Assert.DoesNotContain("step ", err, StringComparison.Ordinal);   // refused before sampling
    }

    [Fact]
    public void Labels_outside_the_classes_are_refused_before_any_work()
    {
        using var dir = new Fixtures.TempDir();
        var (code, _, err) = Run("generate", "--weights", Fixtures.TinyOriginal, "--labels", "3,11", "--out", dir.File("o.safetensors"));
        Assert.Equal(1, code);
        Assert.Contains("class label 11", err, StringComparison.Ordinal);
        Assert.False(File.Exists(dir.File("o.safetensors")));
    }

    [Fact]
    public void Info_and_plan_describe_what_they_are_given()
    {
        var (code, output, _) = Run("info", Fixtures.TinyDiffusers);
        Assert.Equal(0, code);
        Assert.Contains("layout      diffusers", output, StringComparison.Ordinal);
        Assert.Contains("depth 4, hidden 32, heads 4", output, StringComparison.Ordinal);
        var (pc, plan, _) = Run("plan", "--steps", "50", "--depth", "28", "--cache", "blockdance:n=2");
        Assert.Equal(0, pc);
        Assert.StartsWith("FFFFFFFFFFFFFFFFFFFFCRCRCRCRCRCRCRCRCRCRCRCRCRCFFF\n", plan, StringComparison.Ordinal);
        var (jc, json, _) = Run("plan", "--steps", "10", "--weights", Fixtures.TinyOriginal, "--cache", "deepcache:n=2", "--json");
        Assert.Equal(0, jc);
        Assert.Contains("\"kinds\": \"CRCRCRCRCR\"", json, StringComparison.Ordinal);
        Assert.Contains("\"boundary\": 2", json, StringComparison.Ordinal);
        var (hc, help, _) = Run("generate", "--help");
        Assert.Equal(0, hc);
        foreach (var option in new[] { "--weights", "--labels", "--seed", "--steps", "--guidance", "--sampler", "--device", "--cache", "--out" })
            Assert.Contains(option, help, StringComparison.Ordinal);
    }

    [Fact]
    public void Compare_reports_speedup_macs_and_consistency()
    {
        using var dir = new Fixtures.TempDir();
        var (code, output, _) = Run("compare", "--weights", Fixtures.Path("dit_tiny_p4_original.safetensors"), "--steps", "20",
            "--labels", "1,5", "--cache", "blockdance:n=3", "--quiet", "--report", dir.File("c.json"));
        Assert.Equal(0, code);
        Assert.Contains("plan          FFFFFFFFCRRCRRCRRCRF", output, StringComparison.Ordinal);
        var ssimLine = output.Split('\n').Single(l => l.StartsWith("SSIM", StringComparison.Ordinal));
        double ssim = double.Parse(ssimLine[4..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(ssim, 0.5, 1.0);
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(dir.File("c.json")));
        var root = json.RootElement;
        Assert.True(root.GetProperty("speedup").GetDouble() > 0);
        Assert.Equal(root.GetProperty("cached_report").GetProperty("macs_saved_fraction").GetDouble(), root.GetProperty("macs_saved_fraction").GetDouble(), 6);
        Assert.True(root.GetProperty("relative_l2").GetDouble() > 0);
        var (none, _, err) = Run("compare", "--weights", Fixtures.TinyOriginal, "--cache", "none");
        Assert.Equal(2, none);
        Assert.Contains("needs a policy", err, StringComparison.Ordinal);
    }

    [Fact]
    public void Analyze_writes_csv_and_heatmaps()
    {
        using var dir = new Fixtures.TempDir();
        var (code, output, _) = Run("analyze", "--weights", Fixtures.TinyOriginal, "--steps", "6", "--labels", "2", "--quiet", "--out", dir.Root);
        Assert.Equal(0, code);
        Assert.Contains("block_cosine.png", output, StringComparison.Ordinal);
        var lines = File.ReadAllLines(Path.Combine(dir.Root, "block_similarity.csv"));
        Assert.Equal("step,block,cosine,rel_l1", lines[0]);
        Assert.Equal(5 * 4, lines.Length - 1);            // steps 1..5 against the previous one, 4 blocks
        var png = File.ReadAllBytes(Path.Combine(dir.Root, "step_similarity.png"));
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], png[..4]);
    }

    [Fact]
    public void The_real_process_reports_a_bad_option_in_one_line()
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "blockdance.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { dll, "generate", "--steps", "-3", "--weights", Fixtures.TinyOriginal })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.Equal(2, p.ExitCode);
        Assert.Equal("error: --steps -3 is out of range [1, 1000]", err.Trim());
    }

    private static void CopyDump(string source, string target, string tensor, Action<float[]> edit)
    {
        using var f = SafetensorsFile.Open(source);
        var w = new SafetensorsWriter();
        foreach (var t in f.Tensors)
        {
            if (t.Name == tensor)
            {
                var v = f.ReadFloat32(t.Name);
                edit(v);
                w.Add(t.Name, (ReadOnlySpan<float>)v, t.ShapeToArray());
            }
            else
            {
                w.Add(t.Name, t.DType, t.ShapeToArray(), f.GetBytes(t.Name));
            }
        }
        foreach (var (k, v) in f.Metadata)
            w.SetMetadata(k, v);
        w.Save(target);
    }
}
