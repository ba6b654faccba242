using System.Numerics.Tensors;

namespace ClusterEnv.Nn;

/// <summary>
/// Adam (Kingma and Ba) over a flat parameter buffer, as <c>torch.optim.Adam</c>: bias-corrected moments,
/// <c>p −= lr · m̂ / (√v̂ + eps)</c>. The learning rate can change between steps (annealing).
/// </summary>
public sealed class Adam(int size, double learningRate, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8)
{
    private readonly float[] _m = new float[size];
    private readonly float[] _v = new float[size];
    private int _t;

    /// <summary>The learning rate of the next step.</summary>
    public double LearningRate { get; set; } = learningRate;

    /// <summary>Denominator epsilon (CleanRL's PPO uses 1e-5).</summary>
    public double Eps { get; } = eps;

    /// <summary>Steps taken.</summary>
    public int Steps => _t;

    /// <summary>The first-moment estimates (for checkpoints).</summary>
    public ReadOnlySpan<float> FirstMoment => _m;

    /// <summary>The second-moment estimates (for checkpoints).</summary>
    public ReadOnlySpan<float> SecondMoment => _v;

    /// <summary>Restores the state a checkpoint saved: both moments and the step count, so the next step is the one the saved optimizer would have taken.</summary>
    public void Restore(ReadOnlySpan<float> firstMoment, ReadOnlySpan<float> secondMoment, int steps)
    {
        if (firstMoment.Length != _m.Length || secondMoment.Length != _v.Length)
            throw new ArgumentException($"The saved optimizer has {firstMoment.Length} and {secondMoment.Length} moments; this one has {_m.Length} parameters.");
        ArgumentOutOfRangeException.ThrowIfNegative(steps);
        firstMoment.CopyTo(_m);
        secondMoment.CopyTo(_v);
        _t = steps;
    }

    /// <summary>One update of <paramref name="parameters"/> from <paramref name="grads"/>.</summary>
    public void Step(Span<float> parameters, ReadOnlySpan<float> grads)
    {
        if (parameters.Length != _m.Length || grads.Length != _m.Length)
            throw new ArgumentException($"Adam was built for {_m.Length} parameters; got {parameters.Length} values and {grads.Length} gradients.");
        _t++;
        float b1 = (float)beta1, b2 = (float)beta2;
        double c1 = 1 - Math.Pow(beta1, _t), c2 = 1 - Math.Pow(beta2, _t);
        float stepSize = (float)(LearningRate / c1);
        float sqrtC2 = (float)Math.Sqrt(c2), e = (float)Eps;
        for (int i = 0; i < parameters.Length; i++)
        {
            float g = grads[i];
            float m = _m[i] = b1 * _m[i] + (1 - b1) * g;
            float v = _v[i] = b2 * _v[i] + (1 - b2) * g * g;
            parameters[i] -= stepSize * m / (MathF.Sqrt(v) / sqrtC2 + e);
        }
    }

    /// <summary>Scales <paramref name="grads"/> so that their global L2 norm is at most <paramref name="maxNorm"/>; returns the norm before clipping.</summary>
    public static double ClipGradNorm(Span<float> grads, double maxNorm)
    {
        double norm = Math.Sqrt(TensorPrimitives.SumOfSquares<float>(grads));
        if (norm > maxNorm) TensorPrimitives.Multiply(grads, (float)(maxNorm / (norm + 1e-6)), grads);
        return norm;
    }
}
