using ClusterEnv.Common;

namespace ClusterEnv.Nn;

/// <summary>
/// A diagonal Gaussian with a mean per sample and a state-independent log standard deviation (CleanRL's
/// <c>actor_logstd</c>); log-probability and entropy are summed over action dimensions. Methods work on one row.
/// </summary>
public static class DiagGaussian
{
    private const double HalfLog2Pi = 0.91893853320467274178;

    /// <summary>log N(action; mean, exp(logStd)), summed over dimensions.</summary>
    public static float LogProb(ReadOnlySpan<float> mean, ReadOnlySpan<float> logStd, ReadOnlySpan<float> action)
    {
        double s = 0;
        for (int i = 0; i < mean.Length; i++)
        {
            double z = (action[i] - mean[i]) / Math.Exp(logStd[i]);
            s += -0.5 * z * z - logStd[i] - HalfLog2Pi;
        }
        return (float)s;
    }

    /// <summary>Entropy Σ (½ + ½ log 2π + log σ).</summary>
    public static float Entropy(ReadOnlySpan<float> logStd)
    {
        double s = 0;
        foreach (float l in logStd) s += 0.5 + HalfLog2Pi + l;
        return (float)s;
    }

    /// <summary>Draws mean + σ·ε into <paramref name="action"/> and returns its log-probability.</summary>
    public static float Sample(ReadOnlySpan<float> mean, ReadOnlySpan<float> logStd, Rng rng, Span<float> action)
    {
        for (int i = 0; i < mean.Length; i++) action[i] = (float)(mean[i] + Math.Exp(logStd[i]) * rng.NextGaussian());
        return LogProb(mean, logStd, action);
    }

    /// <summary>KL(p ‖ q) between two diagonal Gaussians, exact.</summary>
    public static double Kl(ReadOnlySpan<float> meanP, ReadOnlySpan<float> logStdP, ReadOnlySpan<float> meanQ, ReadOnlySpan<float> logStdQ)
    {
        double kl = 0;
        for (int i = 0; i < meanP.Length; i++)
        {
            double vp = Math.Exp(2.0 * logStdP[i]), vq = Math.Exp(2.0 * logStdQ[i]), d = meanP[i] - meanQ[i];
            kl += logStdQ[i] - logStdP[i] + (vp + d * d) / (2 * vq) - 0.5;
        }
        return Math.Max(kl, 0);
    }

    /// <summary>
    /// Gradients of <c>gLogProb · log π(action) + gEntropy · H</c>: added to <paramref name="gradMean"/> (d/dμ = (a−μ)/σ²)
    /// and to <paramref name="gradLogStd"/> (d/dlog σ = (a−μ)²/σ² − 1 for the log-probability, 1 for the entropy).
    /// </summary>
    public static void Backward(ReadOnlySpan<float> mean, ReadOnlySpan<float> logStd, ReadOnlySpan<float> action, float gLogProb, float gEntropy,
        Span<float> gradMean, Span<float> gradLogStd)
    {
        for (int i = 0; i < mean.Length; i++)
        {
            double var = Math.Exp(2.0 * logStd[i]), d = action[i] - mean[i];
            gradMean[i] += (float)(gLogProb * d / var);
            gradLogStd[i] += (float)(gLogProb * (d * d / var - 1) + gEntropy);
        }
    }
}
