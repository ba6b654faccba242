using ClusterEnv.Common;
using ClusterEnv.Nn;
using MathNet.Numerics.Distributions;

namespace ClusterEnv.Tests.Nn;

public class MlpTests
{
    // loss = Σ c ⊙ MLP(x); checks dL/dθ and dL/dx against central finite differences (in float32, so loose).
    [TestCase(Activation.Tanh)]
    [TestCase(Activation.ReLU)]
    public void Backward_MatchesFiniteDifferences(Activation act)
    {
        var store = new ParameterStore();
        var mlp = new Mlp(store, "net", [5, 7, 6, 3], act);
        store.Build();
        var rng = new Rng(7);
        mlp.Initialize(rng, Math.Sqrt(2), 1.0);
        for (int i = 0; i < store.Count; i++) store.Values[i] += (float)(0.05 * rng.NextGaussian()); // non-zero biases too
        int batch = 4;
        var x = GradientCheck.Uniform(rng, batch * 5, -1, 1);
        var c = GradientCheck.Uniform(rng, batch * 3, -1, 1);
        double Loss() => GradientCheck.Weighted(c, mlp.Forward(x, batch));
        Loss();
        store.ZeroGrad();
        var gx = new float[x.Length];
        mlp.Backward(c, gx);
        GradientCheck.Against(store.Values, store.Grads, Loss, "parameter");
        GradientCheck.Against(x, gx, Loss, "input");
    }

    [Test]
    public void Forward_AllocatesNothingOnceWarm()
    {
        var store = new ParameterStore();
        var mlp = new Mlp(store, "net", [4, 64, 64, 2]);
        store.Build();
        mlp.Initialize(new Rng(0), Math.Sqrt(2), 0.01);
        var x = new float[64 * 4];
        mlp.Forward(x, 64);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++) mlp.Forward(x, 64);
        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero);
    }

    [TestCase(64, 4, 1.4142135)]
    [TestCase(4, 64, 1.0)]
    [TestCase(2, 64, 0.01)]
    public void Orthogonal_GivesOrthonormalRowsOrColumns_TimesTheGain(int rows, int cols, double gain)
    {
        var w = new float[rows * cols];
        Init.Orthogonal(w, rows, cols, gain, new Rng(3));
        bool byRows = rows <= cols;
        int count = byRows ? rows : cols, len = byRows ? cols : rows;
        for (int a = 0; a < count; a++)
            for (int b = 0; b < count; b++)
            {
                double dot = 0;
                for (int i = 0; i < len; i++) dot += (byRows ? w[a * cols + i] * w[b * cols + i] : w[i * cols + a] * w[i * cols + b]);
                Assert.That(dot, Is.EqualTo(a == b ? gain * gain : 0).Within(1e-5 * Math.Max(1, gain * gain)));
            }
    }
}

public class DistributionTests
{
    [Test]
    public void Categorical_LogProbEntropyAndKl_MatchClosedForms()
    {
        float[] p = [0.5f, -1f, 2f], q = [0f, 0.3f, -0.7f];
        double[] pp = Softmax(p), qq = Softmax(q);
        var cat = new MathNet.Numerics.Distributions.Categorical(pp);
        Assert.That(ClusterEnv.Nn.Categorical.LogProb(p, 2), Is.EqualTo(cat.ProbabilityLn(2)).Within(1e-6));
        Assert.That(ClusterEnv.Nn.Categorical.Entropy(p), Is.EqualTo(cat.Entropy).Within(1e-6));
        double kl = pp.Select((x, i) => x * Math.Log(x / qq[i])).Sum();
        Assert.That(ClusterEnv.Nn.Categorical.Kl(p, q), Is.EqualTo(kl).Within(1e-6));
        Assert.That(ClusterEnv.Nn.Categorical.Kl(p, p), Is.EqualTo(0).Within(1e-9));
        Assert.That(ClusterEnv.Nn.Categorical.Mode(p), Is.EqualTo(2));
    }

    [Test]
    public void Categorical_Samples_FollowTheProbabilities()
    {
        float[] logits = [0f, 1f, -1f];
        var expected = Softmax(logits);
        var rng = new Rng(11);
        var counts = new int[3];
        for (int i = 0; i < 60_000; i++)
        {
            int a = ClusterEnv.Nn.Categorical.Sample(logits, rng, out float lp);
            counts[a]++;
            Assert.That(lp, Is.EqualTo(Math.Log(expected[a])).Within(1e-6));
        }
        for (int i = 0; i < 3; i++) Assert.That(counts[i] / 60_000.0, Is.EqualTo(expected[i]).Within(0.01));
    }

    [Test]
    public void Categorical_Backward_MatchesFiniteDifferences()
    {
        float[] z = [0.3f, -0.2f, 1.1f, 0.0f];
        var g = new float[4];
        ClusterEnv.Nn.Categorical.Backward(z, 2, 0.7f, -0.3f, g);
        double F(float[] v) => 0.7 * ClusterEnv.Nn.Categorical.LogProb(v, 2) - 0.3 * ClusterEnv.Nn.Categorical.Entropy(v);
        for (int j = 0; j < 4; j++)
        {
            var up = (float[])z.Clone(); up[j] += 1e-3f;
            var dn = (float[])z.Clone(); dn[j] -= 1e-3f;
            Assert.That(g[j], Is.EqualTo((F(up) - F(dn)) / 2e-3).Within(2e-3));
        }
    }

    [Test]
    public void Gaussian_LogProbEntropyAndKl_MatchClosedForms()
    {
        float[] mu = [0.2f, -1f], ls = [-0.5f, 0.3f], a = [0.9f, -0.4f], mu2 = [0f, 0f], ls2 = [0f, -0.2f];
        double lp = Normal.PDFLn(mu[0], Math.Exp(ls[0]), a[0]) + Normal.PDFLn(mu[1], Math.Exp(ls[1]), a[1]);
        Assert.That(DiagGaussian.LogProb(mu, ls, a), Is.EqualTo(lp).Within(1e-5));
        double h = new Normal(mu[0], Math.Exp(ls[0])).Entropy + new Normal(mu[1], Math.Exp(ls[1])).Entropy;
        Assert.That(DiagGaussian.Entropy(ls), Is.EqualTo(h).Within(1e-5));
        double kl = 0;
        for (int i = 0; i < 2; i++)
        {
            double s0 = Math.Exp(ls[i]), s1 = Math.Exp(ls2[i]);
            kl += Math.Log(s1 / s0) + (s0 * s0 + Math.Pow(mu[i] - mu2[i], 2)) / (2 * s1 * s1) - 0.5;
        }
        Assert.That(DiagGaussian.Kl(mu, ls, mu2, ls2), Is.EqualTo(kl).Within(1e-6));
    }

    [Test]
    public void Gaussian_Backward_MatchesFiniteDifferences()
    {
        float[] mu = [0.2f, -1f], ls = [-0.5f, 0.3f], a = [0.9f, -0.4f];
        var gm = new float[2];
        var gs = new float[2];
        DiagGaussian.Backward(mu, ls, a, 1.3f, 0.4f, gm, gs);
        double F(float[] m, float[] s) => 1.3 * DiagGaussian.LogProb(m, s, a) + 0.4 * DiagGaussian.Entropy(s);
        for (int j = 0; j < 2; j++)
        {
            var up = (float[])mu.Clone(); up[j] += 1e-3f;
            var dn = (float[])mu.Clone(); dn[j] -= 1e-3f;
            Assert.That(gm[j], Is.EqualTo((F(up, ls) - F(dn, ls)) / 2e-3).Within(3e-3));
            var su = (float[])ls.Clone(); su[j] += 1e-3f;
            var sd = (float[])ls.Clone(); sd[j] -= 1e-3f;
            Assert.That(gs[j], Is.EqualTo((F(mu, su) - F(mu, sd)) / 2e-3).Within(3e-3));
        }
    }

    private static double[] Softmax(float[] z)
    {
        double m = z.Max();
        var e = z.Select(v => Math.Exp(v - m)).ToArray();
        double s = e.Sum();
        return e.Select(v => v / s).ToArray();
    }
}

public class AdamTests
{
    [Test]
    public void Step_MatchesTheReferenceFormula()
    {
        var adam = new Adam(2, 0.1, eps: 1e-5);
        float[] p = [1f, -2f];
        double[] m = new double[2], v = new double[2], pr = [1, -2];
        var rng = new Rng(2);
        for (int t = 1; t <= 5; t++)
        {
            float[] g = [(float)rng.Uniform(-1, 1), (float)rng.Uniform(-1, 1)];
            adam.Step(p, g);
            for (int i = 0; i < 2; i++)
            {
                m[i] = 0.9 * m[i] + 0.1 * g[i];
                v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
                pr[i] -= 0.1 * (m[i] / (1 - Math.Pow(0.9, t))) / (Math.Sqrt(v[i] / (1 - Math.Pow(0.999, t))) + 1e-5);
            }
        }
        Assert.That(p[0], Is.EqualTo(pr[0]).Within(1e-5));
        Assert.That(p[1], Is.EqualTo(pr[1]).Within(1e-5));
    }

    [Test]
    public void ClipGradNorm_ScalesToTheMaximum_AndLeavesSmallGradientsAlone()
    {
        float[] g = [3f, 4f];
        Assert.That(Adam.ClipGradNorm(g, 0.5), Is.EqualTo(5).Within(1e-6));
        Assert.That(Math.Sqrt(g[0] * g[0] + g[1] * g[1]), Is.EqualTo(0.5).Within(1e-5));
        float[] small = [0.1f, 0.1f];
        Adam.ClipGradNorm(small, 0.5);
        Assert.That(small, Is.EqualTo(new[] { 0.1f, 0.1f }));
    }
}

public class ActivationTests
{
    [Test]
    public void Tanh_MatchesMathTanh_AcrossTheRange_IncludingTheScalarTail()
    {
        var x = Enumerable.Range(0, 1000 + 7).Select(i => (float)((i - 503) * 0.031)).Concat(new[] { 50f, -50f, 0f, 1e-8f }).ToArray();
        var y = (float[])x.Clone();
        Activations.Tanh(y);
        for (int i = 0; i < x.Length; i++) Assert.That(y[i], Is.EqualTo(Math.Tanh(x[i])).Within(5e-7), $"x = {x[i]}");
    }
}
