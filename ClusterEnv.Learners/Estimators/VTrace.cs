namespace ClusterEnv.Learners.Estimators;

/// <summary>
/// V-trace off-policy targets (Espeholt et al. 2018, "IMPALA", §4.1), with the λ variant and Gymnasium's split of
/// episode ends into termination and truncation.
/// </summary>
/// <remarks>
/// For a rollout of T steps of n sub-envs (index t·n + i), with ρ_t = min(ρ̄, π(a_t|x_t)/μ(a_t|x_t)) and
/// c_t = λ·min(c̄, π(a_t|x_t)/μ(a_t|x_t)):
/// <list type="bullet">
/// <item>δ_t = ρ_t (r_t + γ_t V'_t − V(x_t)), where γ_t is the step's discount (γ, or 0 when the step terminated) and
/// V'_t the value of the observation that followed step t (<c>nextValues</c>: the final observation of a truncated
/// episode, or the bootstrap value after the last step);</item>
/// <item>v_t − V(x_t) = δ_t + γ_t c_t (v_{t+1} − V(x_{t+1})), computed backwards; the trace is cut where an episode
/// ended (terminated or truncated), so no target ever reaches across an episode boundary;</item>
/// <item>the policy-gradient advantage is ρ^pg_t (r_t + γ_t v'_{t+1} − V(x_t)), where v'_{t+1} is v_{t+1} inside an
/// episode and V'_t where the episode ended or the rollout ends.</item>
/// </list>
/// No gradient flows through the outputs: they are targets. Everything is computed in double precision.
/// </remarks>
public static class VTrace
{
    /// <summary>Computes v_s (<paramref name="vs"/>), the policy-gradient advantages and the clipped ρ_t.</summary>
    /// <param name="behaviourLogProbs">log μ(a_t|x_t), as the actor recorded it.</param>
    /// <param name="targetLogProbs">log π(a_t|x_t) under the learner's (target) policy.</param>
    /// <param name="rewards">r_t.</param>
    /// <param name="values">V(x_t).</param>
    /// <param name="nextValues">V'_t: the value of the observation after step t (for t = T − 1, the bootstrap value; at a
    /// truncation, the final observation's value). Ignored where <paramref name="discounts"/> is 0.</param>
    /// <param name="discounts">γ_t: γ, or 0 where the step terminated the episode.</param>
    /// <param name="episodeEnds">True where the episode ended at step t (terminated or truncated): the trace is cut there.</param>
    /// <param name="numSteps">T.</param>
    /// <param name="numEnvs">n.</param>
    /// <param name="rhoBar">ρ̄, the clip of the importance weight in δ_t (1 in the paper).</param>
    /// <param name="cBar">c̄, the clip of the trace coefficient (1 in the paper; ρ̄ ≥ c̄).</param>
    /// <param name="lambda">λ, the trace's decay (1 in the paper).</param>
    /// <param name="pgRhoBar">ρ̄ of the policy-gradient advantage (1 in the paper).</param>
    /// <param name="vs">Out: the targets v_t.</param>
    /// <param name="pgAdvantages">Out: ρ^pg_t (r_t + γ_t v'_{t+1} − V(x_t)).</param>
    /// <param name="clippedRhos">Out: ρ_t (a value below the ratio means it was clipped).</param>
    public static void Compute(ReadOnlySpan<float> behaviourLogProbs, ReadOnlySpan<float> targetLogProbs, ReadOnlySpan<float> rewards,
        ReadOnlySpan<float> values, ReadOnlySpan<float> nextValues, ReadOnlySpan<float> discounts, ReadOnlySpan<bool> episodeEnds,
        int numSteps, int numEnvs, double rhoBar, double cBar, double lambda, double pgRhoBar,
        Span<float> vs, Span<float> pgAdvantages, Span<float> clippedRhos)
    {
        int n = checked(numSteps * numEnvs);
        if (behaviourLogProbs.Length < n || targetLogProbs.Length < n || rewards.Length < n || values.Length < n || nextValues.Length < n ||
            discounts.Length < n || episodeEnds.Length < n || vs.Length < n || pgAdvantages.Length < n || clippedRhos.Length < n)
            throw new ArgumentException($"Every buffer needs numSteps × numEnvs = {n} entries.");
        if (!(rhoBar > 0) || !(cBar > 0) || !(pgRhoBar > 0)) throw new ArgumentOutOfRangeException(nameof(rhoBar), "ρ̄, c̄ and ρ̄_pg must be > 0.");
        if (!(lambda >= 0 && lambda <= 1)) throw new ArgumentOutOfRangeException(nameof(lambda), lambda, "λ must lie in [0, 1].");
        for (int i = 0; i < numEnvs; i++)
        {
            double carry = 0;   // v_{t+1} − V(x_{t+1}), 0 beyond the rollout's end
            double vsNext = 0;  // v_{t+1}
            for (int t = numSteps - 1; t >= 0; t--)
            {
                int k = t * numEnvs + i;
                double ratio = Math.Exp((double)targetLogProbs[k] - behaviourLogProbs[k]);
                double rho = Math.Min(rhoBar, ratio), c = lambda * Math.Min(cBar, ratio);
                double gamma = discounts[k], next = gamma == 0 ? 0 : nextValues[k];
                bool cut = episodeEnds[k] || t == numSteps - 1;
                if (cut) carry = 0;
                double delta = rho * (rewards[k] + gamma * next - values[k]);
                double diff = delta + gamma * c * carry;
                double v = values[k] + diff;
                double bootstrap = cut ? next : vsNext;
                pgAdvantages[k] = (float)(Math.Min(pgRhoBar, ratio) * (rewards[k] + gamma * bootstrap - values[k]));
                vs[k] = (float)v;
                clippedRhos[k] = (float)rho;
                carry = diff;
                vsNext = v;
            }
        }
    }
}
