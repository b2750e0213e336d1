using BlockDance.Runtime.Imaging;

namespace BlockDance.Dit.Plotting;

/// <summary>
/// A small bitmap font for plot text, designed for this project: 5 × 9 glyph cells (capitals and digits 7 rows tall,
/// lowercase x-height 5 rows, 2 rows of descender), drawn with one blank column between glyphs and scaled by an integer
/// factor. It covers digits, A–Z, a–z, space and <c>. , - : ; ( ) [ ] % / = + _ ' ? ! &lt; &gt; | #</c>; any other
/// character is drawn as a hollow box, so a missing glyph is visible rather than silently dropped.
/// </summary>
public static class BitmapFont
{
    /// <summary>Glyph cell width and height in font pixels; the advance is one more than the width.</summary>
    public const int GlyphWidth = 5, GlyphHeight = 9, Advance = GlyphWidth + 1;

    /// <summary>Rows of the capitals and digits (the rest of the cell is descender).</summary>
    public const int CapHeight = 7;

    // Each glyph: up to 9 rows of 5 pixels, '#' ink and '.' blank, rows separated by spaces, top row first; rows left
    // out at the end are blank.
    private static readonly Dictionary<char, string> Designs = new()
    {
        [' '] = "",
        ['0'] = ".###. #...# #..## #.#.# ##..# #...# .###.",
        ['1'] = "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
        ['2'] = ".###. #...# ....# ...#. ..#.. .#... #####",
        ['3'] = "##### ...#. ..#.. ...#. ....# #...# .###.",
        ['4'] = "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
        ['5'] = "##### #.... ####. ....# ....# #...# .###.",
        ['6'] = "..##. .#... #.... ####. #...# #...# .###.",
        ['7'] = "##### ....# ...#. ..#.. .#... .#... .#...",
        ['8'] = ".###. #...# #...# .###. #...# #...# .###.",
        ['9'] = ".###. #...# #...# .#### ....# ...#. .##..",
        ['A'] = ".###. #...# #...# ##### #...# #...# #...#",
        ['B'] = "####. #...# #...# ####. #...# #...# ####.",
        ['C'] = ".###. #...# #.... #.... #.... #...# .###.",
        ['D'] = "###.. #..#. #...# #...# #...# #..#. ###..",
        ['E'] = "##### #.... #.... ####. #.... #.... #####",
        ['F'] = "##### #.... #.... ####. #.... #.... #....",
        ['G'] = ".###. #...# #.... #.### #...# #...# .####",
        ['H'] = "#...# #...# #...# ##### #...# #...# #...#",
        ['I'] = ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
        ['J'] = "..### ...#. ...#. ...#. ...#. #..#. .##..",
        ['K'] = "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
        ['L'] = "#.... #.... #.... #.... #.... #.... #####",
        ['M'] = "#...# ##.## #.#.# #.#.# #...# #...# #...#",
        ['N'] = "#...# #...# ##..# #.#.# #..## #...# #...#",
        ['O'] = ".###. #...# #...# #...# #...# #...# .###.",
        ['P'] = "####. #...# #...# ####. #.... #.... #....",
        ['Q'] = ".###. #...# #...# #...# #.#.# #..#. .##.#",
        ['R'] = "####. #...# #...# ####. #.#.. #..#. #...#",
        ['S'] = ".#### #.... #.... .###. ....# ....# ####.",
        ['T'] = "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
        ['U'] = "#...# #...# #...# #...# #...# #...# .###.",
        ['V'] = "#...# #...# #...# #...# #...# .#.#. ..#..",
        ['W'] = "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
        ['X'] = "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
        ['Y'] = "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
        ['Z'] = "##### ....# ...#. ..#.. .#... #.... #####",
        ['a'] = "..... ..... .###. ....# .#### #...# .####",
        ['b'] = "#.... #.... ####. #...# #...# #...# ####.",
        ['c'] = "..... ..... .###. #.... #.... #...# .###.",
        ['d'] = "....# ....# .#### #...# #...# #...# .####",
        ['e'] = "..... ..... .###. #...# ##### #.... .###.",
        ['f'] = "..##. .#..# .#... ###.. .#... .#... .#...",
        ['g'] = "..... ..... .#### #...# #...# #...# .#### ....# .###.",
        ['h'] = "#.... #.... #.##. ##..# #...# #...# #...#",
        ['i'] = "..#.. ..... .##.. ..#.. ..#.. ..#.. .###.",
        ['j'] = "...#. ..... ..##. ...#. ...#. ...#. ...#. #..#. .##..",
        ['k'] = "#.... #.... #..#. #.#.. ##... #.#.. #..#.",
        ['l'] = ".##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
        ['m'] = "..... ..... ##.#. #.#.# #.#.# #.#.# #.#.#",
        ['n'] = "..... ..... #.##. ##..# #...# #...# #...#",
        ['o'] = "..... ..... .###. #...# #...# #...# .###.",
        ['p'] = "..... ..... ####. #...# #...# #...# ####. #.... #....",
        ['q'] = "..... ..... .#### #...# #...# #...# .#### ....# ....#",
        ['r'] = "..... ..... #.##. ##..# #.... #.... #....",
        ['s'] = "..... ..... .#### #.... .###. ....# ####.",
        ['t'] = ".#... .#... ###.. .#... .#... .#..# ..##.",
        ['u'] = "..... ..... #...# #...# #...# #..## .##.#",
        ['v'] = "..... ..... #...# #...# #...# .#.#. ..#..",
        ['w'] = "..... ..... #...# #...# #.#.# #.#.# .#.#.",
        ['x'] = "..... ..... #...# .#.#. ..#.. .#.#. #...#",
        ['y'] = "..... ..... #...# #...# #...# #...# .#### ....# .###.",
        ['z'] = "..... ..... ##### ...#. ..#.. .#... #####",
        ['.'] = "..... ..... ..... ..... ..... .##.. .##..",
        [','] = "..... ..... ..... ..... ..... .##.. .##.. ..#.. .#...",
        ['-'] = "..... ..... ..... .###. ..... ..... .....",
        [':'] = "..... .##.. .##.. ..... ..... .##.. .##..",
        [';'] = "..... .##.. .##.. ..... ..... .##.. .##.. ..#.. .#...",
        ['('] = "...#. ..#.. .#... .#... .#... ..#.. ...#.",
        [')'] = ".#... ..#.. ...#. ...#. ...#. ..#.. .#...",
        ['['] = ".###. .#... .#... .#... .#... .#... .###.",
        [']'] = ".###. ...#. ...#. ...#. ...#. ...#. .###.",
        ['%'] = "##... ##..# ...#. ..#.. .#... #..## ...##",
        ['/'] = "..... ....# ...#. ..#.. .#... #.... .....",
        ['='] = "..... ..... ##### ..... ##### ..... .....",
        ['+'] = "..... ..#.. ..#.. ##### ..#.. ..#.. .....",
        ['_'] = "..... ..... ..... ..... ..... ..... ..... #####",
        ['\''] = "..#.. ..#.. .#...",
        ['?'] = ".###. #...# ....# ...#. ..#.. ..... ..#..",
        ['!'] = "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..",
        ['<'] = "...#. ..#.. .#... #.... .#... ..#.. ...#.",
        ['>'] = ".#... ..#.. ...#. ....# ...#. ..#.. .#...",
        ['|'] = "..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
        ['#'] = ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.",
    };

    private const string MissingGlyph = "##### #...# #...# #...# #...# #...# #####";

    private static readonly Dictionary<char, bool[,]> Glyphs = Designs.ToDictionary(e => e.Key, e => Parse(e.Key, e.Value));
    private static readonly bool[,] Missing = Parse('\0', MissingGlyph);

    /// <summary>The characters that have a glyph.</summary>
    public static IReadOnlyCollection<char> Characters => Glyphs.Keys;

    /// <summary>True when <paramref name="c"/> has its own glyph (others draw as a box).</summary>
    public static bool HasGlyph(char c) => Glyphs.ContainsKey(c);

    /// <summary>Width in pixels of <paramref name="text"/> at <paramref name="scale"/> (no trailing gap).</summary>
    public static int MeasureWidth(string text, int scale) =>
        string.IsNullOrEmpty(text) ? 0 : (text.Length * Advance - 1) * scale;

    /// <summary>Height in pixels of a line at <paramref name="scale"/>, descenders included.</summary>
    public static int LineHeight(int scale) => GlyphHeight * scale;

    /// <summary>Whether glyph pixel (<paramref name="column"/>, <paramref name="row"/>) of <paramref name="c"/> is ink.</summary>
    public static bool IsInk(char c, int column, int row) => (Glyphs.GetValueOrDefault(c) ?? Missing)[row, column];

    /// <summary>
    /// Draws <paramref name="text"/> with its top-left corner at (<paramref name="x"/>, <paramref name="y"/>); each
    /// font pixel becomes a <paramref name="scale"/> × <paramref name="scale"/> square.
    /// </summary>
    public static void Draw(RgbImage image, int x, int y, string text, Rgb color, int scale = 1)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(text);
        for (int i = 0; i < text.Length; i++)
        {
            var glyph = Glyphs.GetValueOrDefault(text[i]) ?? Missing;
            int left = x + i * Advance * scale;
            for (int row = 0; row < GlyphHeight; row++)
                for (int column = 0; column < GlyphWidth; column++)
                    if (glyph[row, column])
                        image.FillRectangle(left + column * scale, y + row * scale, scale, scale, color);
        }
    }

    /// <summary>
    /// Draws <paramref name="text"/> rotated 90° counter-clockwise (reading upwards, as a y-axis label), with the
    /// bottom-left corner of its rotated box at (<paramref name="x"/>, <paramref name="y"/>): the box is
    /// <see cref="LineHeight"/> wide and <see cref="MeasureWidth"/> tall, extending up and to the right.
    /// </summary>
    public static void DrawVertical(RgbImage image, int x, int y, string text, Rgb color, int scale = 1)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(text);
        for (int i = 0; i < text.Length; i++)
        {
            var glyph = Glyphs.GetValueOrDefault(text[i]) ?? Missing;
            int along = i * Advance * scale; // distance from the start of the text, upwards
            for (int row = 0; row < GlyphHeight; row++)
                for (int column = 0; column < GlyphWidth; column++)
                    if (glyph[row, column])
                        // Horizontal (u = along + column, v = row) maps to (x + v, y − 1 − u).
                        image.FillRectangle(x + row * scale, y - along - (column + 1) * scale, scale, scale, color);
        }
    }

    private static bool[,] Parse(char c, string design)
    {
        var rows = design.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (rows.Length > GlyphHeight)
            throw new InvalidOperationException($"glyph '{c}' has {rows.Length} rows; at most {GlyphHeight}");
        var glyph = new bool[GlyphHeight, GlyphWidth];
        for (int r = 0; r < rows.Length; r++)
        {
            if (rows[r].Length != GlyphWidth || rows[r].Any(ch => ch is not ('#' or '.')))
                throw new InvalidOperationException($"glyph '{c}' row {r} is \"{rows[r]}\"; rows are {GlyphWidth} characters of '#' and '.'");
            for (int col = 0; col < GlyphWidth; col++)
                glyph[r, col] = rows[r][col] == '#';
        }
        return glyph;
    }
}
