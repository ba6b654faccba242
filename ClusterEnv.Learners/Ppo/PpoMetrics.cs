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

    /// <summary>CSV header matching <see cref="ToCsv"/>.</summary>
    public const string CsvHeader = "iteration,global_step,seconds,sps,learning_rate,episodes,episodic_return,episodic_length,mean_return_20,policy_loss,value_loss,entropy,old_approx_kl,approx_kl,clipfrac,explained_variance,policy_version,pushes,total_pushes,bytes_pushed,mean_kl,mean_policy_lag";

    /// <summary>One CSV row.</summary>
    public string ToCsv() => string.Join(",", new object[] { Iteration, GlobalStep, Seconds, Sps, LearningRate, Episodes, EpisodicReturn, EpisodicLength, MeanReturn20,
        PolicyLoss, ValueLoss, Entropy, OldApproxKl, ApproxKl, ClipFraction, ExplainedVariance, PolicyVersion, Pushes, TotalPushes, BytesPushed, MeanKl, MeanPolicyLag }
        .Select(v => Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture)));
}
