using System.Collections;
using System.Globalization;

namespace ClusterEnv.Envs;

/// <summary>
/// Options for <c>Reset</c>, as Gymnasium's <c>options</c> dict: named numeric or boolean values that an env reads
/// (classic control: <c>"low"</c>, <c>"high"</c>; Pendulum: <c>"x_init"</c>, <c>"y_init"</c>), plus
/// <see cref="ResetMask"/> for vector envs. Build with a collection initializer:
/// <c>new ResetOptions { ["low"] = -0.1, ["high"] = 0.1 }</c>.
/// </summary>
public sealed class ResetOptions : IEnumerable<KeyValuePair<string, object>>
{
    private readonly Dictionary<string, object> _values = new(StringComparer.Ordinal);

    /// <summary>Gets or sets a named option.</summary>
    public object this[string key]
    {
        get => _values.TryGetValue(key, out var v) ? v : throw new KeyNotFoundException($"Reset option '{key}' is not set.");
        set => _values[key] = value ?? throw new ArgumentNullException(nameof(value), $"Reset option '{key}' cannot be null.");
    }

    /// <summary>
    /// Vector envs only: which sub-envs to reset (Gymnasium's <c>options["reset_mask"]</c>). Length must equal
    /// <c>NumEnvs</c> and at least one entry must be true. Null resets all.
    /// </summary>
    public bool[]? ResetMask { get; set; }

    /// <summary>The named options (without <see cref="ResetMask"/>).</summary>
    public IReadOnlyDictionary<string, object> Values => _values;

    /// <summary>True when <paramref name="key"/> is set.</summary>
    public bool Contains(string key) => _values.ContainsKey(key);

    /// <summary>Adds an option (collection-initializer support).</summary>
    public void Add(string key, object value) => this[key] = value;

    /// <summary>
    /// The option as a double, or <paramref name="fallback"/> when absent; throws naming the option when its value
    /// is not a number (Gymnasium's <c>verify_number_and_cast</c>).
    /// </summary>
    public double GetDouble(string key, double fallback)
    {
        if (!_values.TryGetValue(key, out var v)) return fallback;
        return v switch
        {
            double d => d,
            float f => f,
            int i => i,
            long l => l,
            decimal m => (double)m,
            string s when double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double p) => p,
            _ => throw new ArgumentException($"Reset option '{key}' = {v} ({v.GetType().Name}) could not be converted to a number; pass a double."),
        };
    }

    /// <summary>Copy without the reset mask (what a vector env passes on to its sub-envs).</summary>
    public ResetOptions WithoutMask()
    {
        var copy = new ResetOptions();
        foreach (var (k, v) in _values) copy._values[k] = v;
        return copy;
    }

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, object>> GetEnumerator() => _values.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
