using ClusterEnv.Common;
using ClusterEnv.Nn;

namespace ClusterEnv.Tests.Nn;

public class Conv2dTests
{
    private static (ParameterStore Store, Conv2d Conv) Make(int cin, int cout, int k, int s, int h, int w, int seed)
    {
        var store = new ParameterStore();
        var conv = new Conv2d(store, "conv", cin, cout, k, s, h, w);
        store.Build();
        var rng = new Rng(seed);
        conv.Initialize(rng, Math.Sqrt(2));
        for (int i = 0; i < store.Count; i++) store.Values[i] += (float)(0.1 * rng.NextGaussian()); // non-zero biases too
        return (store, conv);
    }

    // The definition, in double: y[b, o, y, x] = bias[o] + Σ_c,i,j W[o, c, i, j] · in[b, c, y·s + i, x·s + j].
    private static double[] Direct(float[] input, ParameterStore store, int batch, int cin, int cout, int k, int s, int h, int w)
    {
        int oh = (h - k) / s + 1, ow = (w - k) / s + 1;
        var wt = store[0].Values.ToArray();
        var bias = store[1].Values.ToArray();
        var y = new double[batch * cout * oh * ow];
        for (int b = 0; b < batch; b++)
        for (int o = 0; o < cout; o++)
        for (int py = 0; py < oh; py++)
        for (int px = 0; px < ow; px++)
        {
            double sum = bias[o];
            for (int c = 0; c < cin; c++)
            for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++)
                sum += wt[((o * cin + c) * k + i) * k + j] * input[((b * cin + c) * h + py * s + i) * w + px * s + j];
            y[((b * cout + o) * oh + py) * ow + px] = sum;
        }
        return y;
    }

    [TestCase(3, 4, 3, 1, 7, 9)]
    [TestCase(2, 5, 3, 2, 9, 11)]
    [TestCase(4, 32, 8, 4, 84, 84)] // the Nature CNN's first layer
    [TestCase(1, 2, 4, 3, 10, 13)]  // a stride that leaves the last columns unread
    public void Forward_MatchesTheDefinition(int cin, int cout, int k, int s, int h, int w)
    {
        var (store, conv) = Make(cin, cout, k, s, h, w, seed: 3);
        Assert.That((conv.OutHeight, conv.OutWidth), Is.EqualTo(((h - k) / s + 1, (w - k) / s + 1)));
        var rng = new Rng(5);
        const int batch = 3;
        var x = GradientCheck.Uniform(rng, batch * conv.InputSize, -1, 1);
        var y = new float[batch * conv.OutputSize];
        conv.Forward(x, batch, y);
        var expected = Direct(x, store, batch, cin, cout, k, s, h, w);
        for (int i = 0; i < y.Length; i++) Assert.That(y[i], Is.EqualTo(expected[i]).Within(1e-4 + 1e-4 * Math.Abs(expected[i])), $"output {i}");
    }

    // loss = Σ c ⊙ conv(x): dL/dθ and dL/dx against central finite differences (the loss is linear in each, so they
    // agree up to float rounding).
    [TestCase(3, 4, 3, 1, 6, 7)]
    [TestCase(2, 3, 3, 2, 9, 8)]
    [TestCase(2, 2, 4, 3, 10, 11)]
    public void Backward_MatchesFiniteDifferences(int cin, int cout, int k, int s, int h, int w)
    {
        var (store, conv) = Make(cin, cout, k, s, h, w, seed: 11);
        var rng = new Rng(13);
        const int batch = 2;
        var x = GradientCheck.Uniform(rng, batch * conv.InputSize, -1, 1);
        var c = GradientCheck.Uniform(rng, batch * conv.OutputSize, -1, 1);
        var y = new float[c.Length];
        double Loss()
        {
            conv.Forward(x, batch, y);
            return GradientCheck.Weighted(c, y);
        }
        Loss();
        store.ZeroGrad();
        var gx = new float[x.Length];
        conv.Backward(c, gx);
        GradientCheck.Against(store.Values, store.Grads, Loss, "parameter", abs: 2e-3, rel: 2e-3);
        GradientCheck.Against(x, gx, Loss, "input", abs: 2e-3, rel: 2e-3);
        // A second backward accumulates (as the MLP's): the weight gradients double.
        var first = store.Grads.ToArray();
        Loss();
        conv.Backward(c);
        for (int i = 0; i < first.Length; i++) Assert.That(store.Grads[i], Is.EqualTo(2 * first[i]).Within(1e-4 + 1e-4 * Math.Abs(first[i])));
    }

    [Test]
    public void ForwardAndBackward_AllocateNothingOnceWarm()
    {
        var (_, conv) = Make(4, 32, 8, 4, 84, 84, seed: 1);
        var x = new float[8 * conv.InputSize];
        var y = new float[8 * conv.OutputSize];
        var gx = new float[x.Length];
        conv.Forward(x, 8, y);
        conv.Backward(y, gx);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 3; i++)
        {
            conv.Forward(x, 8, y);
            conv.Backward(y, gx);
        }
        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero);
    }

    [Test]
    public void BadShapes_AreNamed()
    {
        var store = new ParameterStore();
        var ex = Assert.Throws<ArgumentException>(() => new Conv2d(store, "c", 1, 1, 8, 4, 6, 84))!;
        Assert.That(ex.Message, Does.Contain("8×8 kernel does not fit a 6×84 input"));
        Assert.Throws<ArgumentException>(() => new Conv2d(store, "c", 1, 0, 3, 1, 6, 6));
        var conv = new Conv2d(store, "d", 2, 3, 3, 1, 5, 5);
        store.Build();
        var bad = Assert.Throws<ArgumentException>(() => conv.Forward(new float[10], 1, new float[27]))!;
        Assert.That(bad.Message, Does.Contain("2×5×5"));
    }
}

public class ConvEncoderTests
{
    [Test]
    public void TheNatureAndSmallNetworks_HaveDqnsShapes_AndPyTorchsParameterNames()
    {
        var store = new ParameterStore();
        var nature = ConvEncoder.Nature(store, "encoder", 4, 84, 84);
        store.Build();
        Assert.That(nature.FlatSize, Is.EqualTo(64 * 7 * 7));
        Assert.That(nature.Features, Is.EqualTo(512));
        Assert.That(store.Parameters.Select(p => p.Name), Is.EqualTo(new[]
        {
            "encoder.0.weight", "encoder.0.bias", "encoder.2.weight", "encoder.2.bias", "encoder.4.weight", "encoder.4.bias", "encoder.7.weight", "encoder.7.bias",
        }));
        Assert.That(store.Count, Is.EqualTo(1_684_128), "the Nature network's parameter count (CleanRL's Atari agent without its heads)");
        var small = new ParameterStore();
        Assert.That(ConvEncoder.Small(small, "e", 4, 84, 84).FlatSize, Is.EqualTo(32 * 9 * 9));
        var ex = Assert.Throws<ArgumentException>(() => ConvEncoder.Nature(new ParameterStore(), "e", 1, 30, 30))!;
        Assert.That(ex.Message, Does.Contain("too small"));
    }

    // loss = Σ c ⊙ encoder(x) through convolutions, ReLUs and the linear layer, against central finite differences.
    [Test]
    public void Backward_MatchesFiniteDifferences()
    {
        var store = new ParameterStore();
        var enc = new ConvEncoder(store, "e", 2, 11, 12, [(3, 4, 2), (4, 3, 1)], 5);
        store.Build();
        var rng = new Rng(21);
        enc.Initialize(rng);
        for (int i = 0; i < store.Count; i++) store.Values[i] += (float)(0.05 * rng.NextGaussian());
        const int batch = 2;
        var x = GradientCheck.Uniform(rng, batch * enc.InputSize, 0, 1);
        var c = GradientCheck.Uniform(rng, batch * enc.Features, -1, 1);
        double Loss() => GradientCheck.Weighted(c, enc.Forward(x, batch));
        Loss();
        store.ZeroGrad();
        var gx = new float[x.Length];
        enc.Backward(c, gx);
        GradientCheck.Against(store.Values, store.Grads, Loss, "parameter", h: 1e-3f);
        GradientCheck.Against(x, gx, Loss, "input", h: 1e-3f);
    }
}
