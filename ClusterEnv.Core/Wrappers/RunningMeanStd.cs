namespace ClusterEnv.Wrappers;

/// <summary>
/// Running mean and variance per element with the parallel (Chan et al.) update, as Gymnasium's
/// <c>RunningMeanStd(epsilon=1e-4)</c>: starts at mean 0, variance 1, count ε.
/// </summary>
public sealed class RunningMeanStd
{
    private readonly double[] _mean;
    private readonly double[] _var;

    /// <summary>Statistics for vectors of <paramref name="size"/> elements (1 for scalars).</summary>
    public RunningMeanStd(int size, double epsilon = 1e-4)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        _mean = new double[size];
        _var = new double[size];
        Array.Fill(_var, 1.0);
        Count = epsilon;
    }

    /// <summary>Running mean per element.</summary>
    public ReadOnlySpan<double> Mean => _mean;

    /// <summary>Running (population) variance per element.</summary>
    public ReadOnlySpan<double> Var => _var;

    /// <summary>Number of samples seen (plus ε).</summary>
    public double Count { get; private set; }

    /// <summary>Puts saved statistics back (a resumed run): the mean, the variance and the count they came from.</summary>
    public void Restore(ReadOnlySpan<double> mean, ReadOnlySpan<double> var, double count)
    {
        if (mean.Length != _mean.Length || var.Length != _var.Length)
            throw new ArgumentException($"Saved statistics have {mean.Length} and {var.Length} elements; these have {_mean.Length}.");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        mean.CopyTo(_mean);
        var.CopyTo(_var);
        Count = count;
    }

    /// <summary>Adds one sample (a batch of size 1: batch variance 0).</summary>
    public void Update(ReadOnlySpan<float> x)
    {
        if (x.Length != _mean.Length) throw new ArgumentException($"Sample has {x.Length} elements; expected {_mean.Length}.", nameof(x));
        double tot = Count + 1;
        for (int i = 0; i < _mean.Length; i++)
        {
            double delta = x[i] - _mean[i];
            _mean[i] += delta * 1 / tot;
            double m2 = _var[i] * Count + 0 + delta * delta * Count * 1 / tot;
            _var[i] = m2 / tot;
        }
        Count = tot;
    }

    /// <summary>Adds one scalar sample.</summary>
    public void Update(double x)
    {
        double tot = Count + 1;
        double delta = x - _mean[0];
        _mean[0] += delta * 1 / tot;
        _var[0] = (_var[0] * Count + delta * delta * Count * 1 / tot) / tot;
        Count = tot;
    }

    /// <summary>Adds a batch of scalar samples given by its mean, (population) variance and size, as Gymnasium's <c>update_from_moments</c>.</summary>
    public void UpdateFromMoments(double batchMean, double batchVar, double batchCount)
    {
        if (_mean.Length != 1) throw new InvalidOperationException($"UpdateFromMoments takes scalar statistics; these have {_mean.Length} elements.");
        UpdateFromMoments([batchMean], [batchVar], batchCount);
    }

    /// <summary>Adds a batch of vectors given by its per-element mean, (population) variance and size (the parallel update).</summary>
    public void UpdateFromMoments(ReadOnlySpan<double> batchMean, ReadOnlySpan<double> batchVar, double batchCount)
    {
        if (batchMean.Length != _mean.Length || batchVar.Length != _mean.Length)
            throw new ArgumentException($"Batch moments have {batchMean.Length} and {batchVar.Length} elements; these statistics have {_mean.Length}.");
        if (!(batchCount > 0)) return;
        double tot = Count + batchCount;
        for (int i = 0; i < _mean.Length; i++)
        {
            double delta = batchMean[i] - _mean[i];
            _mean[i] += delta * batchCount / tot;
            _var[i] = (_var[i] * Count + batchVar[i] * batchCount + delta * delta * Count * batchCount / tot) / tot;
        }
        Count = tot;
    }
}
