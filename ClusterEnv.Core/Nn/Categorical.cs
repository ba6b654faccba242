using ClusterEnv.Common;

namespace ClusterEnv.Nn;

/// <summary>
/// A categorical distribution over n actions parameterised by logits (PyTorch's <c>Categorical(logits=...)</c>), one
/// row of logits per sample. Every method works on one row, computed stably through log-softmax, and allocates nothing.
/// </summary>
public static class Categorical
{
    /// <summary>log-softmax of <paramref name="logits"/> into <paramref name="logProbs"/>.</summary>
    public static void LogSoftmax(ReadOnlySpan<float> logits, Span<float> logProbs)
    {
        float max = float.NegativeInfinity;
        foreach (float z in logits) max = MathF.Max(max, z);
        double sum = 0;
        foreach (float z in logits) sum += Math.Exp(z - max);
        float logZ = max + (float)Math.Log(sum);
        for (int i = 0; i < logits.Length; i++) logProbs[i] = logits[i] - logZ;
    }

    /// <summary>log π(action).</summary>
    public static float LogProb(ReadOnlySpan<float> logits, int action)
    {
        Span<float> lp = stackalloc float[logits.Length];
        LogSoftmax(logits, lp);
        return lp[action];
    }

    /// <summary>Entropy −Σ p log p.</summary>
    public static float Entropy(ReadOnlySpan<float> logits)
    {
        Span<float> lp = stackalloc float[logits.Length];
        LogSoftmax(logits, lp);
        double h = 0;
        foreach (float l in lp) h -= Math.Exp(l) * l;
        return (float)h;
    }

    /// <summary>The most likely action (first on ties).</summary>
    public static int Mode(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }

    /// <summary>Draws an action by inverse CDF; returns it and its log-probability.</summary>
    public static int Sample(ReadOnlySpan<float> logits, Rng rng, out float logProb)
    {
        Span<float> lp = stackalloc float[logits.Length];
        LogSoftmax(logits, lp);
        double u = rng.NextDouble(), cdf = 0;
        int a = lp.Length - 1;
        for (int i = 0; i < lp.Length; i++)
        {
            cdf += Math.Exp(lp[i]);
            if (u < cdf) { a = i; break; }
        }
        logProb = lp[a];
        return a;
    }

    /// <summary>KL(p ‖ q) = Σ p (log p − log q), exact.</summary>
    public static double Kl(ReadOnlySpan<float> logitsP, ReadOnlySpan<float> logitsQ)
    {
        Span<float> lp = stackalloc float[logitsP.Length];
        Span<float> lq = stackalloc float[logitsQ.Length];
        LogSoftmax(logitsP, lp);
        LogSoftmax(logitsQ, lq);
        double kl = 0;
        for (int i = 0; i < lp.Length; i++) kl += Math.Exp(lp[i]) * (lp[i] - lq[i]);
        return Math.Max(kl, 0);
    }

    /// <summary>
    /// Gradient with respect to the logits of <c>gLogProb · log π(action) + gEntropy · H</c>, added to
    /// <paramref name="gradLogits"/>: d log π(a)/dz_j = 1[j=a] − p_j and dH/dz_j = −p_j (log p_j + H).
    /// </summary>
    public static void Backward(ReadOnlySpan<float> logits, int action, float gLogProb, float gEntropy, Span<float> gradLogits)
    {
        Span<float> lp = stackalloc float[logits.Length];
        LogSoftmax(logits, lp);
        double h = 0;
        foreach (float l in lp) h -= Math.Exp(l) * l;
        for (int j = 0; j < lp.Length; j++)
        {
            double p = Math.Exp(lp[j]);
            double g = gLogProb * ((j == action ? 1 : 0) - p) - gEntropy * p * (lp[j] + h);
            gradLogits[j] += (float)g;
        }
    }
}
