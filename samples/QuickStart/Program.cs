using BlockDance.Dit.Caching;
using BlockDance.Dit.Pipeline;

string output = args.Length > 0 ? args[0] : "quickstart.png";
using var pipeline = DitPipeline.OpenBundled("shapes", new PipelineOptions { Device = DeviceKind.Cpu });
var request = new GenerationRequest
{
    Labels = Enumerable.Repeat(3, 8).ToArray(),
    Cache = CachePolicy.Parse("blockdance:n=2"),
    Seed = 2026,
};
var result = pipeline.Generate(request, new Progress<GenerationProgress>(p => Console.Error.Write($"\rstep {p.Step + 1}/{p.Steps}")));
result.SaveImageGrid(output);
Console.WriteLine($"\nwrote {output}: {result.Report.ToText()}");
