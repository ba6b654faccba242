namespace ClusterEnv.Learners.Estimators;

/// <summary>Generalized Advantage Estimation (Schulman et al. 2016), as in CleanRL's PPO, with terminated and truncated kept apart.</summary>
public static class Gae
{
    /// <summary>
    /// Computes advantages and returns for a rollout of <paramref name="numSteps"/> × <paramref name="numEnvs"/>
    /// (index t·numEnvs + i), backwards: <c>δ_t = r_t + γ (1 − terminated_t) V'_t − V_t</c> and
    /// <c>A_t = δ_t + γ λ (1 − done_t) A_{t+1}</c>, where V'_t (<paramref name="nextValues"/>) is the value of the
    /// observation that followed step t — the final observation of a truncated episode, so truncation bootstraps — and
    /// done = terminated or truncated stops the recursion at episode ends. Returns are A + V.
    /// </summary>
    public static void Compute(ReadOnlySpan<float> rewards, ReadOnlySpan<float> values, ReadOnlySpan<float> nextValues,
        ReadOnlySpan<bool> terminated, ReadOnlySpan<bool> done, int numSteps, int numEnvs, double gamma, double lambda,
        Span<float> advantages, Span<float> returns)
    {
        int n = numSteps * numEnvs;
        if (rewards.Length < n || values.Length < n || nextValues.Length < n || terminated.Length < n || done.Length < n || advantages.Length < n || returns.Length < n)
            throw new ArgumentException($"Every buffer needs numSteps × numEnvs = {n} entries.");
        for (int i = 0; i < numEnvs; i++)
        {
            double next = 0;
            for (int t = numSteps - 1; t >= 0; t--)
            {
                int k = t * numEnvs + i;
                double delta = rewards[k] + gamma * (terminated[k] ? 0 : nextValues[k]) - values[k];
                next = delta + gamma * lambda * (done[k] ? 0 : next);
                advantages[k] = (float)next;
                returns[k] = (float)(next + values[k]);
            }
        }
    }
}
