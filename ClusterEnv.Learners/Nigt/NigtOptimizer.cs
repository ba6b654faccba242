namespace ClusterEnv.Learners.Nigt;

/// <summary>
/// NIGT, normalized SGD with implicit gradient transport (Cutkosky &amp; Mehta, "Momentum Improves Normalized SGD",
/// ICML 2020), the base optimizer of Rennala and Malenia NIGT (Tyurin, Spiridonov, Rudenko, arXiv 2509.24305), written
/// here for descent on a loss (the paper ascends the return; the gradient of −J is what a learner computes):
/// <code>
///   x̃_k     = θ_k + β/(1−β)·(θ_k − θ_{k−1})        the transported point, where gradients are computed
///   m_k     = β·m_{k−1} + (1−β)·ĝ(x̃_k)
///   θ_{k+1} = θ_k − η·m_k/‖m_k‖
/// </code>
/// Every step has length η whatever the gradient's scale, and the transport corrects the momentum's lag.
/// </summary>
public sealed class NigtOptimizer
{
    private readonly float[] _previous;
    private readonly float[] _momentum;
    private bool _started;

    /// <summary>An optimizer for <paramref name="size"/> parameters with momentum <paramref name="beta"/> and step length <paramref name="learningRate"/>.</summary>
    public NigtOptimizer(int size, double learningRate, double beta = 0.9)
    {
        if (!(learningRate > 0)) throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "The NIGT step length η must be > 0.");
        if (!(beta is >= 0 and < 1)) throw new ArgumentOutOfRangeException(nameof(beta), beta, "The NIGT momentum β must be in [0, 1).");
        _previous = new float[size];
        _momentum = new float[size];
        LearningRate = learningRate;
        Beta = beta;
    }

    /// <summary>η, the length of every step.</summary>
    public double LearningRate { get; set; }

    /// <summary>β, the momentum.</summary>
    public double Beta { get; }

    /// <summary>Steps taken.</summary>
    public long Steps { get; private set; }

    /// <summary>The momentum m (for tests and checkpoints).</summary>
    public ReadOnlySpan<float> Momentum => _momentum;

    /// <summary>Writes x̃ = θ + β/(1−β)·(θ − θ_prev) into <paramref name="point"/> (θ itself before the first step).</summary>
    public void Transport(ReadOnlySpan<float> theta, Span<float> point)
    {
        if (!_started)
        {
            theta.CopyTo(point);
            return;
        }
        double c = Beta / (1 - Beta);
        for (int i = 0; i < theta.Length; i++) point[i] = (float)(theta[i] + c * (theta[i] - _previous[i]));
    }

    /// <summary>One step with <paramref name="gradient"/> = ĝ(x̃): updates m and moves θ by η along −m/‖m‖.</summary>
    public void Step(Span<float> theta, ReadOnlySpan<float> gradient)
    {
        if (theta.Length != _momentum.Length || gradient.Length != _momentum.Length)
            throw new ArgumentException($"NIGT holds {_momentum.Length} parameters; got θ of {theta.Length} and a gradient of {gradient.Length}.");
        double norm2 = 0;
        for (int i = 0; i < _momentum.Length; i++)
        {
            float m = (float)(Beta * _momentum[i] + (1 - Beta) * gradient[i]);
            _momentum[i] = m;
            norm2 += (double)m * m;
        }
        theta.CopyTo(_previous);
        _started = true;
        Steps++;
        if (norm2 == 0) return; // no direction: stay (the gradient and the momentum are both zero)
        double scale = LearningRate / Math.Sqrt(norm2);
        for (int i = 0; i < theta.Length; i++) theta[i] = (float)(theta[i] - scale * _momentum[i]);
    }
}
