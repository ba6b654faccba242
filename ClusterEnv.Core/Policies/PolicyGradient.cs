using System.Runtime.InteropServices;
using ClusterEnv.Common;
using ClusterEnv.Envs;
using ClusterEnv.Nn;

namespace ClusterEnv.Policies;

/// <summary>How a worker computes a policy gradient (truncated REINFORCE).</summary>
/// <param name="Episodes">Episodes behind one gradient.</param>
/// <param name="Horizon">H: episodes are cut after this many steps.</param>
/// <param name="Gamma">γ in Σ_{h≥t} γ^h r_h (discounted from the episode's start, as in the truncated-return objective).</param>
/// <param name="StandardizeReturns">Standardise the reward-to-go over the gradient's steps (a baseline; false is the plain estimator).</param>
public sealed record GradientSettings(int Episodes = 2, int Horizon = 500, double Gamma = 0.99, bool StandardizeReturns = true);

/// <summary>
/// The truncated REINFORCE gradient g_H = Σ_t (Σ_{h=t}^{H−1} γ^h r_h) ∇log π(a_t|s_t), averaged over episodes, as the
/// gradient of the loss −J (so an optimizer descends it). Used by in-process gradient workers and by cluster workers
/// that answer a gradient command alike. Discrete actions only.
/// </summary>
public static class PolicyGradient
{
    /// <summary>
    /// Runs <see cref="GradientSettings.Episodes"/> episodes on <paramref name="envs"/> (episode e on env e mod count) with
    /// <paramref name="policy"/>, and returns −g_H. <paramref name="progress"/> hears the steps taken so far after every step.
    /// </summary>
    public static float[] Reinforce(ActorCritic policy, IReadOnlyList<IEnv> envs, Rng rng, GradientSettings settings, List<double> returns, out long steps,
        int? firstSeed = null, Action<int>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(policy);
        if (policy.Spec.Continuous) throw new NotSupportedException("The REINFORCE gradient here is written for discrete actions.");
        int m = policy.Spec.ObservationSize, k = policy.Spec.ActionSize;
        var obs = new List<float>();
        var actions = new List<int>();
        var weights = new List<float>();
        var ob = new float[m];
        var act = new int[1];
        var logp = new float[1];
        var value = new float[1];
        steps = 0;
        var rewards = new List<double>();
        for (int e = 0; e < settings.Episodes; e++)
        {
            var env = envs[e % envs.Count];
            env.Reset(ob, seed: e == 0 ? firstSeed : null);
            rewards.Clear();
            for (int t = 0; t < settings.Horizon; t++)
            {
                policy.Act(ob, 1, rng, act, Span<float>.Empty, logp, value);
                obs.AddRange(ob);
                actions.Add(act[0]);
                var r = env.Step(act[0], ob);
                rewards.Add(r.Reward);
                steps++;
                progress?.Invoke((int)System.Math.Min(steps, int.MaxValue));
                if (r.Done) break;
            }
            returns.Add(rewards.Sum());
            var togo = new double[rewards.Count];
            double acc = 0;
            for (int t = rewards.Count - 1; t >= 0; t--)
            {
                acc += Math.Pow(settings.Gamma, t) * rewards[t];
                togo[t] = acc;
            }
            foreach (double g in togo) weights.Add((float)g);
        }
        int n = actions.Count;
        if (settings.StandardizeReturns && n > 1)
        {
            double mean = weights.Average(), var = weights.Sum(w => (w - mean) * (w - mean)) / (n - 1), sd = Math.Sqrt(var) + 1e-8;
            for (int i = 0; i < n; i++) weights[i] = (float)((weights[i] - mean) / sd);
        }
        // Loss −(1/E)·Σ_t G_t log π(a_t|s_t).
        policy.Store.ZeroGrad();
        var head = policy.ForwardActor(CollectionsMarshal.AsSpan(obs), n);
        var dHead = new float[n * k];
        for (int i = 0; i < n; i++)
            Categorical.Backward(head.Slice(i * k, k), actions[i], -weights[i] / settings.Episodes, 0, dHead.AsSpan(i * k, k));
        policy.BackwardActor(dHead);
        return policy.Store.Grads.ToArray();
    }
}
