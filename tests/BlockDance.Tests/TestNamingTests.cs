using System.Reflection;
using System.Text.RegularExpressions;
using Xunit;

namespace BlockDance.Tests;

/// <summary>
/// One naming convention for every test (issue 12): a sentence with underscores that says what holds
/// (<c>Missing_file_is_a_safetensors_exception_naming_the_path</c>); identifiers and acronyms keep their case.
/// </summary>
public sealed partial class TestNamingTests
{
    [Fact]
    public void Every_test_is_named_as_a_sentence_with_underscores()
    {
        var tests = typeof(TestNamingTests).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly))
            .Where(m => m.GetCustomAttributes<FactAttribute>(inherit: true).Any())
            .ToList();
        Assert.True(tests.Count > 200, $"found only {tests.Count} tests: the reflection misses some");
        var wrong = tests.Where(m => !Sentence().IsMatch(m.Name)).Select(m => $"{m.DeclaringType!.Name}.{m.Name}").ToList();
        Assert.True(wrong.Count == 0, "tests not named as a sentence with underscores: " + string.Join(", ", wrong));
    }

    // A capitalised first word, then at least one more word, each separated by one underscore.
    [GeneratedRegex("^[A-Z0-9][A-Za-z0-9]*(_[A-Za-z0-9]+)+$")]
    private static partial Regex Sentence();
}
