using ClusterEnv.Common;

namespace ClusterEnv.Nn;

/// <summary>Weight initialisers.</summary>
public static class Init
{
    /// <summary>
    /// Orthogonal initialisation as <c>torch.nn.init.orthogonal_</c>: a Gaussian matrix, its QR decomposition, Q with
    /// the signs of R's diagonal, scaled by <paramref name="gain"/>. A (rows × cols) weight gets orthonormal rows when
    /// rows ≤ cols and orthonormal columns otherwise.
    /// </summary>
    public static void Orthogonal(Span<float> weight, int rows, int cols, double gain, Rng rng)
    {
        if (weight.Length != rows * cols) throw new ArgumentException($"Weight has {weight.Length} elements, not {rows}×{cols}.", nameof(weight));
        // Work on the tall orientation (big × small), whose columns are made orthonormal.
        bool transpose = rows < cols;
        int big = transpose ? cols : rows, small = transpose ? rows : cols;
        var q = new double[big * small];
        for (int i = 0; i < q.Length; i++) q[i] = rng.NextGaussian();
        // Modified Gram-Schmidt on the columns; R's diagonal is each column's norm before normalising, so it is
        // positive and the sign correction of torch (q *= sign(diag(r))) is the identity here.
        for (int j = 0; j < small; j++)
        {
            for (int p = 0; p < j; p++)
            {
                double dot = 0;
                for (int i = 0; i < big; i++) dot += q[i * small + j] * q[i * small + p];
                for (int i = 0; i < big; i++) q[i * small + j] -= dot * q[i * small + p];
            }
            double norm = 0;
            for (int i = 0; i < big; i++) norm += q[i * small + j] * q[i * small + j];
            norm = Math.Sqrt(norm);
            for (int i = 0; i < big; i++) q[i * small + j] /= norm;
        }
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                weight[r * cols + c] = (float)(gain * (transpose ? q[c * small + r] : q[r * small + c]));
    }
}
