using ClusterEnv.Common;
using ClusterEnv.Nn;

namespace ClusterEnv.Tests.Nn;

public class GemmTests
{
    private static float[] Random(Rng rng, int n)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)rng.Uniform(-1, 1);
        return x;
    }

    // The slow formula, in double precision.
    private static double[] Reference(float[] a, bool ta, float[] b, bool tb, int m, int k, int n)
    {
        var c = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int p = 0; p < k; p++) s += (double)(ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
                c[i * n + j] = s;
            }
        return c;
    }

    [TestCase(1, 1, 1)]
    [TestCase(6, 4, 32)]
    [TestCase(7, 3, 33)]
    [TestCase(64, 4, 64)]
    [TestCase(13, 300, 17)]
    [TestCase(100, 257, 70)]
    [TestCase(200, 64, 1)]
    public void Multiply_MatchesTheSlowFormula_ForEveryTransposeCombination(int m, int k, int n)
    {
        var rng = new Rng(m * 1000 + k * 10 + n);
        foreach (bool ta in new[] { false, true })
        foreach (bool tb in new[] { false, true })
        {
            var a = Random(rng, m * k);
            var b = Random(rng, k * n);
            var c = new float[m * n];
            Gemm.Multiply(a, ta, b, tb, c, m, k, n);
            var expected = Reference(a, ta, b, tb, m, k, n);
            double tol = 1e-5 * Math.Sqrt(k) + 1e-6;
            for (int i = 0; i < c.Length; i++)
                Assert.That(c[i], Is.EqualTo(expected[i]).Within(tol), $"ta={ta} tb={tb} element {i}");
        }
    }

    [Test]
    public void Multiply_Accumulate_AddsToC()
    {
        var rng = new Rng(1);
        int m = 9, k = 300, n = 40;
        var a = Random(rng, m * k);
        var b = Random(rng, k * n);
        var c = Random(rng, m * n);
        var before = (float[])c.Clone();
        Gemm.Multiply(a, false, b, true, c, m, k, n, accumulate: true);
        var product = Reference(a, false, b, true, m, k, n);
        for (int i = 0; i < c.Length; i++) Assert.That(c[i], Is.EqualTo(before[i] + product[i]).Within(1e-4));
    }

    [Test]
    public void Multiply_AllocatesNothingOnceWarm()
    {
        var a = new float[64 * 64];
        var b = new float[64 * 64];
        var c = new float[64 * 64];
        Gemm.Multiply(a, false, b, true, c, 64, 64, 64);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++) Gemm.Multiply(a, false, b, true, c, 64, 64, 64);
        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero);
    }

    [Test]
    public void Multiply_BadSizes_ThrowNamingTheOperand()
    {
        Assert.That(() => Gemm.Multiply(new float[3], false, new float[4], false, new float[4], 2, 2, 2), Throws.ArgumentException.With.Message.Contains("A has 3"));
        Assert.That(() => Gemm.Multiply(new float[4], false, new float[4], false, new float[3], 2, 2, 2), Throws.ArgumentException.With.Message.Contains("C has 3"));
    }
}
