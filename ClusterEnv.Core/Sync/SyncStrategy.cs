namespace ClusterEnv.Sync;

/// <summary>When the APS gate sends a worker new weights. The first deployment always happens, whatever the strategy.</summary>
public sealed record SyncStrategy
{
    private SyncStrategy(SyncKind kind, int every, double tau, int maxLag = 0)
    {
        Kind = kind;
        Every = every;
        Tau = tau;
        MaxLag = maxLag;
    }

    /// <summary>
    /// Push whatever the KL says once a worker's deployed version is this many versions behind the learner (0: no
    /// cap). A cap means no threshold can starve a worker of updates: with a clipped objective anchored on a stale
    /// behaviour policy the learner may never drift past τ again, and without the cap that worker would act with the
    /// same weights forever.
    /// </summary>
    public int MaxLag { get; }

    /// <summary>The rule.</summary>
    public SyncKind Kind { get; }

    /// <summary><see cref="SyncKind.EveryN"/>: push every this many updates.</summary>
    public int Every { get; }

    /// <summary><see cref="SyncKind.KlThreshold"/>: push when KL(deployed ‖ current) exceeds this.</summary>
    public double Tau { get; }

    /// <summary>Push after every update (no bandwidth saved; the baseline).</summary>
    public static SyncStrategy Always { get; } = new(SyncKind.Always, 1, 0);

    /// <summary>Never push after the first deployment (workers act with the initial policy forever).</summary>
    public static SyncStrategy Never { get; } = new(SyncKind.Never, 0, 0);

    /// <summary>Push every <paramref name="n"/> updates.</summary>
    public static SyncStrategy EveryN(int n) => n > 0 ? new(SyncKind.EveryN, n, 0) : throw new ArgumentOutOfRangeException(nameof(n), n, "EveryN needs n >= 1.");

    /// <summary>Adaptive Policy Synchronization: push when the mean KL(deployed ‖ current) over the worker's recent states exceeds <paramref name="tau"/>.</summary>
    public static SyncStrategy KlThreshold(double tau) => KlThreshold(tau, 0);

    /// <summary>Adaptive Policy Synchronization with a lag cap: push when KL exceeds <paramref name="tau"/> or the worker is <paramref name="maxLag"/> versions behind (0: no cap).</summary>
    public static SyncStrategy KlThreshold(double tau, int maxLag) =>
        !(tau >= 0 && double.IsFinite(tau)) ? throw new ArgumentOutOfRangeException(nameof(tau), tau, "The KL threshold must be a finite number >= 0.")
        : maxLag < 0 ? throw new ArgumentOutOfRangeException(nameof(maxLag), maxLag, "The lag cap must be >= 0 (0: none).")
        : new(SyncKind.KlThreshold, 0, tau, maxLag);

    /// <summary>Parses "always", "never", "every:N", a number τ, or "τ:L" (KL threshold τ with lag cap L).</summary>
    public static SyncStrategy Parse(string text) => text.Trim().ToLowerInvariant() switch
    {
        "always" => Always,
        "never" => Never,
        var s when s.StartsWith("every:", StringComparison.Ordinal) && int.TryParse(s[6..], out int n) => EveryN(n),
        var s when double.TryParse(s, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double tau) => KlThreshold(tau),
        var s when s.Split(':') is [var t, var l] && double.TryParse(t, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double tau)
                                                   && int.TryParse(l, out int lag) => KlThreshold(tau, lag),
        _ => throw new FormatException($"'{text}' is not a sync strategy; use always, never, every:N, a KL threshold such as 0.01, or a threshold with a lag cap such as 0.05:8."),
    };

    /// <inheritdoc />
    public override string ToString() => Kind switch
    {
        SyncKind.Always => "always",
        SyncKind.Never => "never",
        SyncKind.EveryN => $"every:{Every}",
        _ => Tau.ToString("G", System.Globalization.CultureInfo.InvariantCulture) + (MaxLag > 0 ? $":{MaxLag}" : ""),
    };
}

/// <summary>The kinds of <see cref="SyncStrategy"/>.</summary>
public enum SyncKind
{
    /// <summary>Every update.</summary>
    Always,
    /// <summary>Every N updates.</summary>
    EveryN,
    /// <summary>When KL exceeds τ.</summary>
    KlThreshold,
    /// <summary>Only the first deployment.</summary>
    Never,
}
