using System.CommandLine;

namespace ClusterEnv.CommandLine;

/// <summary>The command-line conventions shared by every ClusterEnv program (compiled into each one).</summary>
internal static class Cli
{
    /// <summary>Exit code for a bad command line (as with most Unix tools).</summary>
    public const int UsageError = 2;

    /// <summary>
    /// Parses <paramref name="args"/> and runs the command's action. A bad flag or value prints what is wrong and
    /// how to get help to stderr and returns <see cref="UsageError"/>, without running anything.
    /// </summary>
    public static int Run(RootCommand root, string[] args)
    {
        var parsed = root.Parse(args);
        if (parsed.Errors.Count == 0) return parsed.Invoke();
        foreach (var error in parsed.Errors) Console.Error.WriteLine(Plain(error.Message));
        Console.Error.WriteLine($"Run '{root.Name} --help' to see the options.");
        return UsageError;
    }

    /// <summary>
    /// Parses <paramref name="args"/> for a program that reads its options itself. Returns the exit code when the
    /// program should stop now — after <c>--help</c> or <c>--version</c> (0), or a bad flag or value (2, with the
    /// errors on stderr) — and null when it should go on with <paramref name="parsed"/>.
    /// </summary>
    public static int? Parse(RootCommand root, string[] args, out ParseResult parsed)
    {
        parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            foreach (var error in parsed.Errors) Console.Error.WriteLine(Plain(error.Message));
            Console.Error.WriteLine($"Run '{root.Name} --help' to see the options.");
            return UsageError;
        }
        return parsed.Action is not null ? parsed.Invoke() : null;
    }

    // System.CommandLine names the CLR type it could not parse into ("System.Nullable`1[System.Int64]"); say what to type.
    private static string Plain(string message) => System.Text.RegularExpressions.Regex.Replace(message,
        @"as expected type '(?:System\.Nullable`1\[)?System\.(\w+)\]?'",
        m => "as " + (m.Groups[1].Value switch
        {
            "Int32" or "Int64" => "a whole number",
            "Double" or "Single" => "a number",
            "Boolean" => "true or false",
            var t => $"a {t}",
        }));

    /// <summary>Refuses a value below <paramref name="min"/>, naming the flag and the value.</summary>
    public static Option<int> AtLeast(this Option<int> option, int min) => option.Check(v => v >= min ? null : $"{option.Name} ({v}) must be at least {min}.");

    /// <summary>Refuses a value below <paramref name="min"/>, naming the flag and the value.</summary>
    public static Option<long> AtLeast(this Option<long> option, long min) => option.Check(v => v >= min ? null : $"{option.Name} ({v}) must be at least {min}.");

    /// <summary>Refuses zero, negative, NaN or infinite values, naming the flag and the value.</summary>
    public static Option<double> Positive(this Option<double> option) => option.Check(v => v > 0 && double.IsFinite(v) ? null : $"{option.Name} ({v}) must be a positive number.");

    /// <summary>
    /// Adds a check of the option's value: <paramref name="problem"/> returns what is wrong (and how to fix it), or
    /// null. A value that could not even be converted is already reported by the parser and is not checked again.
    /// </summary>
    public static Option<T> Check<T>(this Option<T> option, Func<T, string?> problem)
    {
        option.Validators.Add(r =>
        {
            T value;
            try { value = r.GetValueOrDefault<T>(); }
            catch (InvalidOperationException) { return; }
            if (problem(value) is { } message) r.AddError(message);
        });
        return option;
    }

    /// <summary>
    /// Reads a secret (a token) from <paramref name="path"/>, warning on stderr when other users can read the file:
    /// anyone who can read it can join the hub. Returns null (after saying why) when it cannot be read or is empty.
    /// </summary>
    public static string? ReadSecret(string path, string flag)
    {
        if (!File.Exists(path))
        {
            Console.Error.WriteLine($"{flag} '{path}' does not exist.");
            return null;
        }
        if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & (UnixFileMode.GroupRead | UnixFileMode.OtherRead)) != 0)
            Console.Error.WriteLine($"Warning: {flag} '{path}' is readable by other users (mode {Convert.ToString((int)File.GetUnixFileMode(path), 8)}), and anyone who can read it can join the hub; make it private with: chmod 600 '{path}'.");
        string secret;
        try { secret = File.ReadAllText(path).Trim(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"{flag} '{path}' cannot be read: {e.Message}");
            return null;
        }
        if (secret.Length == 0) Console.Error.WriteLine($"{flag} '{path}' is empty; write the token into it (e.g. openssl rand -hex 32 > '{path}').");
        return secret.Length == 0 ? null : secret;
    }

    /// <summary>An option with a description and a default.</summary>
    public static Option<T> Option<T>(string name, string description, T defaultValue) =>
        new(name) { Description = description, DefaultValueFactory = _ => defaultValue };

    /// <summary>An option with a description and no default.</summary>
    public static Option<T> Option<T>(string name, string description) => new(name) { Description = description };

    /// <summary>A comma-separated list option, e.g. <c>--seeds 1,2,3</c>.</summary>
    public static Option<T[]> List<T>(string name, string description, string defaultValue) where T : IParsable<T> =>
        new(name)
        {
            Description = description + " (comma-separated)",
            CustomParser = r => ParseList<T>(r.Tokens.Count == 0 ? defaultValue : string.Join(",", r.Tokens.Select(t => t.Value)), r),
            DefaultValueFactory = r => ParseList<T>(defaultValue, r),
        };

    private static T[] ParseList<T>(string text, System.CommandLine.Parsing.ArgumentResult result) where T : IParsable<T>
    {
        var items = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var values = new T[items.Length];
        for (int i = 0; i < items.Length; i++)
        {
            if (!T.TryParse(items[i], System.Globalization.CultureInfo.InvariantCulture, out var v))
            {
                result.AddError($"'{items[i]}' is not a valid {typeof(T).Name} in '{text}'.");
                return [];
            }
            values[i] = v;
        }
        return values;
    }
}
