namespace ClusterEnv.Tests.Nn;

/// <summary>Checks analytic gradients against central finite differences of a scalar loss (in float32, so with a loose tolerance).</summary>
internal static class GradientCheck
{
    /// <summary>Σ c ⊙ y: a scalar loss whose gradient with respect to y is c.</summary>
    public static double Weighted(float[] c, ReadOnlySpan<float> y)
    {
        double s = 0;
        for (int i = 0; i < c.Length; i++) s += c[i] * y[i];
        return s;
    }

    /// <summary><paramref name="n"/> floats uniform in [lo, hi).</summary>
    public static float[] Uniform(ClusterEnv.Common.Rng rng, int n, double lo, double hi) =>
        Enumerable.Range(0, n).Select(_ => (float)rng.Uniform(lo, hi)).ToArray();

    /// <summary>For every element of <paramref name="values"/>: (loss(v + h) − loss(v − h)) / 2h against <paramref name="analytic"/>, within abs + rel·|numeric|.</summary>
    public static void Against(float[] values, float[] analytic, Func<double> loss, string what, float h = 1e-2f, double abs = 2e-3, double rel = 2e-2)
    {
        Assert.That(analytic, Has.Length.AtLeast(values.Length), $"{what}: one analytic gradient per value");
        for (int i = 0; i < values.Length; i++)
        {
            float keep = values[i];
            values[i] = keep + h;
            double up = loss();
            values[i] = keep - h;
            double down = loss();
            values[i] = keep;
            double numeric = (up - down) / (2 * h);
            Assert.That(analytic[i], Is.EqualTo(numeric).Within(abs + rel * Math.Abs(numeric)), $"{what} {i}");
        }
    }
}
