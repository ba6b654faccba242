namespace ClusterEnv.Nn;

/// <summary>
/// Told during a backward pass each time a range of the store's gradient buffer is final (a layer's weight and bias,
/// in the order backward finishes them: the last layer first), so that a data-parallel learner can start all-reducing
/// those gradients while earlier layers' backward still runs. Ranges are half-open offsets into
/// <see cref="ParameterStore.Grads"/>; over a whole backward they cover every parameter the pass differentiates once.
/// </summary>
public interface IGradientReady
{
    /// <summary>Gradients [<paramref name="offset"/>, <paramref name="offset"/> + <paramref name="length"/>) are final for this backward.</summary>
    void Ready(int offset, int length);
}
