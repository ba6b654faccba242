using ClusterEnv.Common;
using ClusterEnv.Learners.Estimators;

namespace ClusterEnv.Tests.Learners;

public class VTraceTests
{
    private sealed record Case(int T, int N, float[] Mu, float[] Pi, float[] R, float[] V, float[] Next, float[] Gamma, bool[] End);

    private static Case Random(int seed, int T, int n, double gamma, double endProbability, bool samePolicy = false)
    {
        var rng = new Rng(seed);
        float F(double lo, double hi) => (float)rng.Uniform(lo, hi);
        int c = T * n;
        var mu = Enumerable.Range(0, c).Select(_ => F(-3, -0.05)).ToArray();
        var pi = samePolicy ? (float[])mu.Clone() : Enumerable.Range(0, c).Select(_ => F(-3, -0.05)).ToArray();
        var end = Enumerable.Range(0, c).Select(_ => rng.Uniform(0, 1) < endProbability).ToArray();
        // Half of the episode ends terminate (discount 0), the others are truncations (they bootstrap).
        var g = Enumerable.Range(0, c).Select(k => end[k] && rng.Uniform(0, 1) < 0.5 ? 0f : (float)gamma).ToArray();
        var v = Enumerable.Range(0, c).Select(_ => F(-2, 2)).ToArray();
        // V'_t is the next row's value inside an episode; at an episode end or the rollout's end, a value of its own
        // (the final observation's, or the bootstrap).
        var next = Enumerable.Range(0, c).Select(k => end[k] || k + n >= c ? F(-2, 2) : v[k + n]).ToArray();
        return new Case(T, n, mu, pi, Enumerable.Range(0, c).Select(_ => F(-1, 1)).ToArray(), v, next, g, end);
    }

    private static (float[] Vs, float[] Pg, float[] Rho) Run(Case x, double rhoBar, double cBar, double lambda, double pgRhoBar = 1)
    {
        int c = x.T * x.N;
        var (vs, pg, rho) = (new float[c], new float[c], new float[c]);
        VTrace.Compute(x.Mu, x.Pi, x.R, x.V, x.Next, x.Gamma, x.End, x.T, x.N, rhoBar, cBar, lambda, pgRhoBar, vs, pg, rho);
        return (vs, pg, rho);
    }

    // The paper's n-step sum, forwards: v_s = V(x_s) + Σ_{t=s}^{e} (Π_{j=s}^{t−1} γ_j c_j) δ_t, where e is the first
    // episode end at or after s (or the rollout's last step), and δ_t = ρ_t (r_t + γ_t V'_t − V(x_t)) with V'_t the
    // next observation's value: V(x_{t+1}) inside the rollout and episode, the given next value at an end.
    private static (double[] Vs, double[] Pg) GroundTruth(Case x, double rhoBar, double cBar, double lambda, double pgRhoBar)
    {
        int T = x.T, n = x.N;
        var vs = new double[T * n];
        var pg = new double[T * n];
        for (int i = 0; i < n; i++)
            for (int s = 0; s < T; s++)
            {
                double sum = 0, product = 1;
                for (int t = s; t < T; t++)
                {
                    int k = t * n + i;
                    double ratio = Math.Exp((double)x.Pi[k] - x.Mu[k]);
                    bool last = x.End[k] || t == T - 1;
                    double nextV = last ? x.Next[k] : x.V[k + n];
                    double delta = Math.Min(rhoBar, ratio) * (x.R[k] + x.Gamma[k] * nextV - x.V[k]);
                    sum += product * delta;
                    if (last) break;
                    product *= x.Gamma[k] * lambda * Math.Min(cBar, ratio);
                }
                vs[s * n + i] = x.V[s * n + i] + sum;
            }
        for (int i = 0; i < n; i++)
            for (int s = 0; s < T; s++)
            {
                int k = s * n + i;
                double ratio = Math.Exp((double)x.Pi[k] - x.Mu[k]);
                bool last = x.End[k] || s == T - 1;
                double next = last ? x.Next[k] : vs[k + n];
                pg[k] = Math.Min(pgRhoBar, ratio) * (x.R[k] + x.Gamma[k] * next - x.V[k]);
            }
        return (vs, pg);
    }

    [TestCase(1, 1.0, 1.0, 1.0, 1.0)]
    [TestCase(2, 1.0, 1.0, 0.95, 1.0)]
    [TestCase(3, 2.0, 0.5, 0.9, 1.5)]
    [TestCase(4, 0.7, 0.7, 1.0, 0.7)]
    public void Compute_EqualsThePapersSum_OnRandomInputs(int seed, double rhoBar, double cBar, double lambda, double pgRhoBar)
    {
        var x = Random(seed, T: 23, n: 5, gamma: 0.97, endProbability: 0.1);
        var (vs, pg, rho) = Run(x, rhoBar, cBar, lambda, pgRhoBar);
        var (expectedVs, expectedPg) = GroundTruth(x, rhoBar, cBar, lambda, pgRhoBar);
        for (int k = 0; k < vs.Length; k++)
        {
            Assert.That(vs[k], Is.EqualTo(expectedVs[k]).Within(1e-6 * Math.Max(1, Math.Abs(expectedVs[k]))), $"v_s at {k}");
            Assert.That(pg[k], Is.EqualTo(expectedPg[k]).Within(1e-6 * Math.Max(1, Math.Abs(expectedPg[k]))), $"pg advantage at {k}");
            Assert.That(rho[k], Is.EqualTo(Math.Min(rhoBar, Math.Exp((double)x.Pi[k] - x.Mu[k]))).Within(1e-6));
        }
        Assert.That(x.End.Count(e => e), Is.GreaterThan(3), "the inputs include episode ends");
    }

    [TestCase(1.0)]
    [TestCase(0.9)]
    public void OnPolicy_EqualsTheLambdaReturn(double lambda)
    {
        // π = μ: every ρ and c is 1, so v_s is the λ-return, which GAE computes as A + V.
        var x = Random(11, T: 31, n: 3, gamma: 0.99, endProbability: 0.08, samePolicy: true);
        var (vs, pg, rho) = Run(x, 1, 1, lambda);
        int c = x.T * x.N;
        var terminated = x.Gamma.Select(g => g == 0).ToArray();
        var (adv, ret) = (new float[c], new float[c]);
        Gae.Compute(x.R, x.V, x.Next, terminated, x.End.Select((e, k) => e).ToArray(), x.T, x.N, 0.99, lambda, adv, ret);
        for (int k = 0; k < c; k++)
        {
            Assert.That(rho[k], Is.EqualTo(1f));
            Assert.That(vs[k], Is.EqualTo(ret[k]).Within(1e-5), $"step {k}");
        }
        if (lambda == 1.0)
        {
            // λ = 1: the n-step bootstrapped return, summed by hand for env 0 from step 0.
            double g = 0, discount = 1;
            for (int t = 0; t < x.T; t++)
            {
                int k = t * x.N;
                g += discount * x.R[k];
                if (x.End[k] || t == x.T - 1) { g += discount * x.Gamma[k] * x.Next[k]; break; }
                discount *= x.Gamma[k];
            }
            Assert.That(vs[0], Is.EqualTo(g).Within(1e-5));
        }
    }

    [Test]
    public void Truncation_Bootstraps_FromTheFinalObservation_AndTermination_NeverLooksPast()
    {
        // One env, 4 steps, on-policy. Step 1 is truncated (final observation's value 10); step 2 terminates.
        float[] r = [1, 1, 1, 1], v = [0.5f, 0.5f, 0.5f, 0.5f], next = [0.5f, 10f, 99f, 3f], mu = [-0.7f, -0.7f, -0.7f, -0.7f];
        float[] gamma = [0.9f, 0.9f, 0f, 0.9f];
        bool[] end = [false, true, true, false];
        var (vs, pg, rho) = (new float[4], new float[4], new float[4]);
        VTrace.Compute(mu, mu, r, v, next, gamma, end, 4, 1, 1, 1, 1, 1, vs, pg, rho);
        Assert.That(vs[1], Is.EqualTo(1 + 0.9 * 10).Within(1e-6), "truncation bootstraps from the final observation");
        Assert.That(vs[0], Is.EqualTo(1 + 0.9 * (1 + 0.9 * 10)).Within(1e-5), "the step before sees through to the truncation's bootstrap");
        Assert.That(vs[2], Is.EqualTo(1).Within(1e-6), "termination: no bootstrap, whatever the next value says");
        Assert.That(vs[3], Is.EqualTo(1 + 0.9 * 3).Within(1e-6), "the rollout's last step bootstraps from the given value");
        Assert.That(pg[2], Is.EqualTo(1 - 0.5).Within(1e-6));
        Assert.That(pg[1], Is.EqualTo(1 + 0.9 * 10 - 0.5).Within(1e-5));
    }

    [Test]
    public void BadArguments_AreNamed()
    {
        var a = new float[4];
        var ex = Assert.Throws<ArgumentException>(() => VTrace.Compute(a, a, a, a, a, a, new bool[4], 3, 2, 1, 1, 1, 1, a, a, a))!;
        Assert.That(ex.Message, Does.Contain("numSteps × numEnvs = 6"));
        Assert.Throws<ArgumentOutOfRangeException>(() => VTrace.Compute(a, a, a, a, a, a, new bool[4], 2, 2, 1, 1, 1.5, 1, a, a, a));
    }
}
