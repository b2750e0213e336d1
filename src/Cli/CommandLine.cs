using System.Globalization;
using System.Text;

namespace BlockDance.Cli;

/// <summary>A mistake in how the command was called; printed as one line, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>One option of a command: <c>--name VALUE</c>, or a flag without a value.</summary>
public sealed record OptionSpec(string Name, string? ValueName, string Description, string? Default = null)
{
    public bool IsFlag => ValueName is null;
}

/// <summary>A command's name, summary and options; parses its arguments and prints its help.</summary>
public sealed class CommandSpec(string name, string summary, string? positional = null, string? positionalDescription = null)
{
    private readonly List<OptionSpec> _options = [];

    public string Name { get; } = name;
    public string Summary { get; } = summary;
    public string? Positional { get; } = positional;
    public IReadOnlyList<OptionSpec> Options => _options;

    public CommandSpec Option(string name, string valueName, string description, string? defaultValue = null)
    {
        _options.Add(new OptionSpec(name, valueName, description, defaultValue));
        return this;
    }

    public CommandSpec Flag(string name, string description)
    {
        _options.Add(new OptionSpec(name, null, description));
        return this;
    }

    public string Help()
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"usage: blockdance {Name}");
        if (Positional is not null)
            sb.Append(' ').Append(Positional);
        sb.Append(" [options]\n\n").Append(Summary).Append("\n\n");
        if (Positional is not null && positionalDescription is not null)
            sb.Append(CultureInfo.InvariantCulture, $"  {Positional,-28} {positionalDescription}\n");
        foreach (var o in _options)
        {
            string left = o.IsFlag ? o.Name : $"{o.Name} {o.ValueName}";
            string desc = o.Default is null ? o.Description : $"{o.Description} (default: {o.Default})";
            sb.Append(CultureInfo.InvariantCulture, $"  {left,-28} {desc}\n");
        }
        sb.Append(CultureInfo.InvariantCulture, $"  {"--help",-28} show this help\n");
        return sb.ToString();
    }

    /// <summary>Parses arguments; unknown options, missing values and repeated options are usage errors.</summary>
    public ParsedArgs Parse(IReadOnlyList<string> args)
    {
        var values = new Dictionary<string, string>();
        var flags = new HashSet<string>();
        var positionals = new List<string>();
        for (int i = 0; i < args.Count; i++)
        {
            string a = args[i];
            if (a == "--help" || a == "-h")
                return new ParsedArgs(this, values, flags, positionals, help: true);
            if (a.StartsWith("--", StringComparison.Ordinal))
            {
                string name = a;
                string? inline = null;
                int eq = a.IndexOf('=', StringComparison.Ordinal);
                if (eq > 0)
                {
                    name = a[..eq];
                    inline = a[(eq + 1)..];
                }
                var spec = _options.FirstOrDefault(o => o.Name == name)
                    ?? throw new UsageException($"unknown option '{name}' for '{Name}'{Suggest(name)} (see 'blockdance {Name} --help')");
                if (spec.IsFlag)
                {
                    if (inline is not null)
                        throw new UsageException($"option '{name}' takes no value");
                    flags.Add(name);
                    continue;
                }
                string value = inline ?? (i + 1 < args.Count ? args[++i] : throw new UsageException($"option '{name}' needs a value ({spec.ValueName})"));
                if (!values.TryAdd(name, value))
                    throw new UsageException($"option '{name}' is given twice");
                continue;
            }
            if (Positional is null || positionals.Count > 0)
                throw new UsageException($"unexpected argument '{a}' for '{Name}' (see 'blockdance {Name} --help')");
            positionals.Add(a);
        }
        return new ParsedArgs(this, values, flags, positionals, help: false);
    }

    private string Suggest(string name)
    {
        var best = _options.Select(o => (o.Name, Distance: Levenshtein(o.Name, name))).OrderBy(p => p.Distance).FirstOrDefault();
        return best.Name is not null && best.Distance <= Math.Max(1, name.Length / 3) ? $"; did you mean '{best.Name}'?" : "";
    }

    private static int Levenshtein(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
        return d[a.Length, b.Length];
    }
}

/// <summary>Parsed arguments with typed, validated accessors; every failure is a one-line <see cref="UsageException"/>.</summary>
public sealed class ParsedArgs
{
    private readonly CommandSpec _spec;
    private readonly Dictionary<string, string> _values;
    private readonly HashSet<string> _flags;

    internal ParsedArgs(CommandSpec spec, Dictionary<string, string> values, HashSet<string> flags, List<string> positionals, bool help)
    {
        _spec = spec;
        _values = values;
        _flags = flags;
        Positionals = positionals;
        IsHelp = help;
    }

    public bool IsHelp { get; }
    public IReadOnlyList<string> Positionals { get; }

    public bool Has(string name) => _values.ContainsKey(name) || _flags.Contains(name);
    public bool Flag(string name) => _flags.Contains(name);

    public string? String(string name) => _values.TryGetValue(name, out var v) ? v : Default(name);

    public string RequiredString(string name) =>
        String(name) ?? throw new UsageException($"'{_spec.Name}' needs {name}");

    public int Int(string name, int min = int.MinValue, int max = int.MaxValue)
    {
        string s = String(name) ?? throw new UsageException($"'{_spec.Name}' needs {name}");
        if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v))
            throw new UsageException($"{name} '{s}' is not an integer");
        if (v < min || v > max)
            throw new UsageException($"{name} {v} is out of range [{min}, {max}]");
        return v;
    }

    public int? OptionalInt(string name, int min = int.MinValue, int max = int.MaxValue) => String(name) is null ? null : Int(name, min, max);

    public ulong ULong(string name)
    {
        string s = String(name) ?? throw new UsageException($"'{_spec.Name}' needs {name}");
        return ulong.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out ulong v)
            ? v : throw new UsageException($"{name} '{s}' is not a non-negative integer");
    }

    public double Double(string name, double min = double.MinValue, double max = double.MaxValue)
    {
        string s = String(name) ?? throw new UsageException($"'{_spec.Name}' needs {name}");
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !double.IsFinite(v))
            throw new UsageException($"{name} '{s}' is not a number");
        if (v < min || v > max)
            throw new UsageException($"{name} {v} is out of range [{min}, {max}]");
        return v;
    }

    public int[] IntList(string name)
    {
        string s = String(name) ?? throw new UsageException($"'{_spec.Name}' needs {name}");
        var result = new List<int>();
        foreach (string part in s.Split(',', StringSplitOptions.TrimEntries))
        {
            if (part.Length == 0)
                throw new UsageException($"{name}: empty element in '{s}' (expected a list like 1,2,5-7)");
            int dash = part.Length > 1 ? part.IndexOf('-', 1) : -1;
            if (dash > 0 && int.TryParse(part[..dash], NumberStyles.Integer, CultureInfo.InvariantCulture, out int lo)
                && int.TryParse(part[(dash + 1)..], NumberStyles.Integer, CultureInfo.InvariantCulture, out int hi) && lo <= hi && hi - lo < 100000)
            {
                for (int v = lo; v <= hi; v++)
                    result.Add(v);
                continue;
            }
            if (!int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out int x))
                throw new UsageException($"{name}: '{part}' is not an integer (expected a list like 1,2,5-7)");
            result.Add(x);
        }
        return [.. result];
    }

    public T Choice<T>(string name, Func<string, T> parse)
    {
        string s = String(name) ?? throw new UsageException($"'{_spec.Name}' needs {name}");
        try
        {
            return parse(s);
        }
        catch (Exception e) when (e is ArgumentException or Runtime.InvalidRequestException)
        {
            throw new UsageException($"{name}: {e.Message}");
        }
    }

    private string? Default(string name) => _spec.Options.FirstOrDefault(o => o.Name == name)?.Default;
}
