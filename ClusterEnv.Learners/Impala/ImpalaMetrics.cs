namespace ClusterEnv.Learners.Impala;

/// <summary>What one IMPALA / IMPACT learner update measured. The CSV and TensorBoard scalars come from <see cref="Scalars"/>.</summary>
public sealed record ImpalaMetrics
{
    /// <summary>1-based update (a batch taken; IMPACT may take several optimizer steps per update).</summary>
    public int Update { get; init; }
    /// <summary>Env steps consumed by the learner so far (dropped stale rollouts excluded).</summary>
    public long GlobalStep { get; init; }
    /// <summary>Seconds since the start.</summary>
    public double Seconds { get; init; }
    /// <summary>Env steps consumed per second since the start.</summary>
    public double Sps { get; init; }
    /// <summary>Optimizer steps per second since the start.</summary>
    public double UpdatesPerSecond { get; init; }
    /// <summary>Fraction of the wall time the learner spent computing updates (the rest: waiting for rollouts, publishing).</summary>
    public double BusyFraction { get; init; }
    /// <summary>Learning rate used.</summary>
    public double LearningRate { get; init; }
    /// <summary>Rollouts waiting in the queue after this update's take.</summary>
    public long QueueDepth { get; init; }
    /// <summary>Episodes finished in the rollouts of this update.</summary>
    public int Episodes { get; init; }
    /// <summary>Their mean return (NaN when none).</summary>
    public double EpisodicReturn { get; init; }
    /// <summary>Their mean length (NaN when none).</summary>
    public double EpisodicLength { get; init; }
    /// <summary>Mean return of the last 20 episodes (NaN before the first).</summary>
    public double MeanReturn20 { get; init; }
    /// <summary>Policy-gradient loss (IMPACT: the clipped surrogate), mean over transitions.</summary>
    public double PolicyLoss { get; init; }
    /// <summary>½ (v_s − V(x_s))², mean over transitions.</summary>
    public double ValueLoss { get; init; }
    /// <summary>Mean policy entropy.</summary>
    public double Entropy { get; init; }
    /// <summary>Fraction of importance weights ρ that V-trace clipped at ρ̄.</summary>
    public double RhoClippedFraction { get; init; }
    /// <summary>Global L2 norm of the gradient before clipping.</summary>
    public double GradNorm { get; init; }
    /// <summary>Mean KL(π before ‖ π after) of the optimizer step over the batch: how far one update moved the policy.</summary>
    public double UpdateKl { get; init; }
    /// <summary>Mean policy lag (learner version − acting version) of this update's samples.</summary>
    public double MeanPolicyLag { get; init; }
    /// <summary>Largest policy lag among this update's samples.</summary>
    public ulong MaxPolicyLag { get; init; }
    /// <summary>Fractions of this update's samples with lag 0, 1, 2–3, 4–7, 8–15 and 16 or more.</summary>
    public double[] LagHistogram { get; init; } = new double[6];
    /// <summary>Rollouts dropped so far for exceeding <see cref="ImpalaOptions.MaxPolicyLag"/>.</summary>
    public long DroppedStale { get; init; }
    /// <summary>The learner's policy version after this update.</summary>
    public ulong PolicyVersion { get; init; }
    /// <summary>Weight pushes sent after this update.</summary>
    public int Pushes { get; init; }
    /// <summary>Pushes so far (first deployment included).</summary>
    public int TotalPushes { get; init; }
    /// <summary>Bytes pushed so far.</summary>
    public long BytesPushed { get; init; }
    /// <summary>Mean over measured workers of KL(deployed ‖ current) at this update's decisions.</summary>
    public double MeanKl { get; init; } = double.NaN;

    /// <summary>Every metric as (TensorBoard tag, value), in CSV column order; the CSV column is the part of the tag after the '/'.</summary>
    public (string Tag, double Value)[] Scalars() =>
    [
        ("charts/update", Update), ("charts/global_step", GlobalStep), ("charts/seconds", Seconds), ("charts/SPS", Sps),
        ("charts/updates_per_second", UpdatesPerSecond), ("charts/learner_busy_fraction", BusyFraction), ("charts/learning_rate", LearningRate),
        ("charts/queue_depth", QueueDepth), ("charts/episodes", Episodes), ("charts/episodic_return", EpisodicReturn),
        ("charts/episodic_length", EpisodicLength), ("charts/mean_return_20", MeanReturn20),
        ("losses/policy_loss", PolicyLoss), ("losses/value_loss", ValueLoss), ("losses/entropy", Entropy), ("losses/rho_clipped_fraction", RhoClippedFraction),
        ("losses/grad_norm", GradNorm), ("losses/update_kl", UpdateKl),
        ("lag/mean_policy_lag", MeanPolicyLag), ("lag/max_policy_lag", MaxPolicyLag),
        ("lag/lag_0", LagHistogram[0]), ("lag/lag_1", LagHistogram[1]), ("lag/lag_2_3", LagHistogram[2]), ("lag/lag_4_7", LagHistogram[3]),
        ("lag/lag_8_15", LagHistogram[4]), ("lag/lag_16_up", LagHistogram[5]), ("lag/dropped_stale", DroppedStale),
        ("aps/policy_version", PolicyVersion), ("aps/pushes", Pushes), ("aps/total_pushes", TotalPushes), ("aps/bytes_pushed", BytesPushed), ("aps/mean_kl", MeanKl),
    ];

    /// <summary>CSV header matching <see cref="ToCsv"/>.</summary>
    public static string CsvHeader { get; } = Metrics.MetricsCsv.Header(new ImpalaMetrics().Scalars());

    /// <summary>One CSV row.</summary>
    public string ToCsv() => Metrics.MetricsCsv.Row(Scalars());
}
