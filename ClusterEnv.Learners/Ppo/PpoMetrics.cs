namespace ClusterEnv.Learners.Ppo;

/// <summary>What one PPO iteration measured (CleanRL's logged scalars).</summary>
public sealed record PpoMetrics
{
    /// <summary>1-based iteration.</summary>
    public int Iteration { get; init; }
    /// <summary>Env steps so far (all envs).</summary>
    public long GlobalStep { get; init; }
    /// <summary>Env steps per second since the start.</summary>
    public double Sps { get; init; }
    /// <summary>Seconds since the start.</summary>
    public double Seconds { get; init; }
    /// <summary>Learning rate used.</summary>
    public double LearningRate { get; init; }
    /// <summary>Episodes finished in this iteration.</summary>
    public int Episodes { get; init; }
    /// <summary>Mean return of the episodes finished in this iteration (NaN when none).</summary>
    public double EpisodicReturn { get; init; }
    /// <summary>Mean length of the episodes finished in this iteration (NaN when none).</summary>
    public double EpisodicLength { get; init; }
    /// <summary>Mean return of the last 20 episodes (NaN before the first).</summary>
    public double MeanReturn20 { get; init; }
    /// <summary>Clipped surrogate loss (last minibatch).</summary>
    public double PolicyLoss { get; init; }
    /// <summary>Value loss (last minibatch).</summary>
    public double ValueLoss { get; init; }
    /// <summary>Mean entropy (last minibatch).</summary>
    public double Entropy { get; init; }
    /// <summary>mean(−log r) (last minibatch).</summary>
    public double OldApproxKl { get; init; }
    /// <summary>mean((r − 1) − log r) (last minibatch).</summary>
    public double ApproxKl { get; init; }
    /// <summary>Fraction of samples whose ratio was clipped (mean over all minibatches).</summary>
    public double ClipFraction { get; init; }
    /// <summary>1 − Var(returns − values) / Var(returns) over the rollout.</summary>
    public double ExplainedVariance { get; init; }

    /// <summary>Worker-side acting: the learner's policy version after this update.</summary>
    public ulong PolicyVersion { get; init; }
    /// <summary>Worker-side acting: weight pushes sent after this update.</summary>
    public int Pushes { get; init; }
    /// <summary>Worker-side acting: pushes so far (first deployment included).</summary>
    public int TotalPushes { get; init; }
    /// <summary>Worker-side acting: bytes pushed so far.</summary>
    public long BytesPushed { get; init; }
    /// <summary>Worker-side acting: mean over workers of KL(deployed ‖ current) at this update's decisions.</summary>
    public double MeanKl { get; init; } = double.NaN;
    /// <summary>Worker-side acting: mean over sub-envs of (learner version − acting version) for this rollout.</summary>
    public double MeanPolicyLag { get; init; }

    /// <summary>Worker-side acting: fraction of the wall time the learner spent computing (advantages and updates) rather than waiting for rollouts.</summary>
    public double BusyFraction { get; init; } = double.NaN;

    /// <summary>
    /// Every metric as (TensorBoard tag, value), in CSV column order; the CSV column is the part of the tag after the
    /// '/'. Groups as CleanRL logs them: charts/, losses/, and aps/ for worker-side acting.
    /// </summary>
    public (string Tag, double Value)[] Scalars() =>
    [
        ("charts/iteration", Iteration), ("charts/global_step", GlobalStep), ("charts/seconds", Seconds), ("charts/SPS", Sps),
        ("charts/learning_rate", LearningRate), ("charts/episodes", Episodes), ("charts/episodic_return", EpisodicReturn),
        ("charts/episodic_length", EpisodicLength), ("charts/mean_return_20", MeanReturn20),
        ("losses/policy_loss", PolicyLoss), ("losses/value_loss", ValueLoss), ("losses/entropy", Entropy),
        ("losses/old_approx_kl", OldApproxKl), ("losses/approx_kl", ApproxKl), ("losses/clipfrac", ClipFraction),
        ("losses/explained_variance", ExplainedVariance),
        ("aps/policy_version", PolicyVersion), ("aps/pushes", Pushes), ("aps/total_pushes", TotalPushes), ("aps/bytes_pushed", BytesPushed),
        ("aps/mean_kl", MeanKl), ("aps/mean_policy_lag", MeanPolicyLag), ("charts/learner_busy_fraction", BusyFraction),
    ];

    /// <summary>CSV header matching <see cref="ToCsv"/>.</summary>
    public static string CsvHeader { get; } = Metrics.MetricsCsv.Header(new PpoMetrics().Scalars());

    /// <summary>One CSV row.</summary>
    public string ToCsv() => Metrics.MetricsCsv.Row(Scalars());
}
