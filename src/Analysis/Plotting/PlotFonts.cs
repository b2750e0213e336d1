using BlockDance.Runtime;
using SkiaSharp;

namespace BlockDance.Analysis.Plotting;

/// <summary>
/// The font of every plot's text: DejaVu Sans (regular and bold) from Debian's <c>fonts-dejavu-core</c>, registered
/// with ScottPlot from its files once per process, so a figure looks the same on every machine that has the package.
/// Without those files the platform's sans-serif font is used; with no font at all a figure cannot show its text, and
/// the first plot throws a <see cref="BlockDanceException"/> that names the package to install.
/// </summary>
internal static class PlotFonts
{
    private const string Registered = "DejaVu Sans";

    private static readonly string[] Directories =
        ["/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/TTF", "/usr/share/fonts/dejavu", "/usr/local/share/fonts"];

    private static readonly Lazy<string> Resolved = new(Resolve, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The font family name to give ScottPlot.</summary>
    public static string Family => Resolved.Value;

    private static string Resolve()
    {
        string? regular = Find("DejaVuSans.ttf");
        if (regular is not null)
        {
            ScottPlot.Fonts.AddFontFile(Registered, regular, bold: false, italic: false);
            ScottPlot.Fonts.AddFontFile(Registered, Find("DejaVuSans-Bold.ttf") ?? regular, bold: true, italic: false);
            return Registered;
        }
        if (SKFontManager.Default.FontFamilyCount > 0)
            return ScottPlot.Fonts.Sans;
        throw new BlockDanceException(
            "no font to draw the plot's text: install Debian's fonts-dejavu-core (eng/install-deps.sh runtime does), " +
            "or any TrueType font under /usr/share/fonts");
    }

    private static string? Find(string file) =>
        Directories.Select(d => Path.Combine(d, file)).FirstOrDefault(File.Exists);
}
