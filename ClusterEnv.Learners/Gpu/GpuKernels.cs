using ILGPU;
using ILGPU.Algorithms;

namespace ClusterEnv.Learners.Gpu;

/// <summary>GEMM shape and flags (row-major C (m×n) = op(A) (m×k) · op(B) (k×n), as the CPU engine's Gemm.Multiply).</summary>
internal readonly record struct GemmShape(int M, int K, int N, int TransA, int TransB, int Accumulate);

/// <summary>The scalars of one PPO minibatch's loss (CleanRL's clipped surrogate, value clipping, entropy bonus).</summary>
internal readonly record struct PpoScalars(double ClipCoef, double VfCoef, double EntCoef, int ClipValueLoss, int Batch, int ActionSize);

/// <summary>Adam's per-step scalars (torch.optim.Adam, as the CPU engine's Adam.Step).</summary>
internal readonly record struct AdamScalars(float Beta1, float Beta2, float StepSize, float SqrtC2, float Eps, int Length);

/// <summary>A grid-stride launch: <see cref="Threads"/> threads cover <see cref="Total"/> items, thread t taking t, t + Threads, ….</summary>
internal readonly record struct Stride(int Total, int Threads);

/// <summary>
/// The device engine's kernels, written once in C#: ILGPU compiles them to PTX for CUDA and runs the same code on its
/// CPU accelerator, which is how the tests check every kernel against the CPU engine without a GPU. Each mirrors a
/// CPU-engine function (named in its comment) and keeps its arithmetic (double where the CPU engine uses double).
/// Every kernel loops grid-stride (<see cref="Stride"/>): a GPU launches one thread per item or close to it, the CPU
/// accelerator a few threads that each take many items (its cost is per thread, about 0.1 ms).
/// </summary>
internal static class GpuKernels
{
    private const double HalfLog2Pi = 0.91893853320467274178;

    // Gemm.Multiply: one thread per element of C. (On CUDA the learner's GEMMs go to cuBLAS; this kernel serves the
    // CPU accelerator and the check that cuBLAS is called right.)
    public static void Gemm(Index1D t, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmShape s, Stride g)
    {
        for (int index = t; index < g.Total; index += g.Threads)
        {
            int i = index / s.N, j = index % s.N;
            float sum = 0;
            for (int p = 0; p < s.K; p++)
            {
                float av = s.TransA == 0 ? a[i * s.K + p] : a[p * s.M + i];
                float bv = s.TransB == 0 ? b[p * s.N + j] : b[j * s.K + p];
                sum += av * bv;
            }
            c[index] = s.Accumulate != 0 ? c[index] + sum : sum;
        }
    }

    // Mlp.Forward's bias and activation: y[r, j] = act(y[r, j] + bias[j]); activation 0 none, 1 tanh, 2 ReLU.
    public static void BiasActivation(Index1D t, ArrayView<float> y, ArrayView<float> bias, int width, int activation, Stride g)
    {
        for (int index = t; index < g.Total; index += g.Threads)
        {
            float v = y[index] + bias[index % width];
            if (activation == 1) v = XMath.Tanh(v);
            else if (activation == 2) v = v > 0f ? v : 0f;
            y[index] = v;
        }
    }

    // Mlp.Backward through the activation whose output is x: tanh' = 1 − x², ReLU' = 1[x > 0].
    public static void ActivationBackward(Index1D t, ArrayView<float> delta, ArrayView<float> x, int activation, Stride g)
    {
        for (int index = t; index < g.Total; index += g.Threads)
        {
            float xv = x[index];
            delta[index] = activation == 1 ? delta[index] * (1f - xv * xv) : (xv <= 0f ? 0f : delta[index]);
        }
    }

    // Column sums of a (rows × width) matrix added to sums (bias gradients; the Gaussian's log-std gradient).
    public static void ColumnSumAdd(Index1D t, ArrayView<float> m, ArrayView<float> sums, int rows, int width, Stride g)
    {
        for (int j = t; j < g.Total; j += g.Threads)
        {
            float s = sums[j];
            for (int r = 0; r < rows; r++) s += m[r * width + j];
            sums[j] = s;
        }
    }

    // Ppo.Update's per-sample loss for a categorical policy: log-softmax, log π(a), entropy, ratio, clipped surrogate
    // and value loss; writes d loss / d logits (Categorical.Backward), d loss / d V, and 7 metrics per sample
    // (policy loss, value loss, entropy, old approx KL, approx KL, clipped, 0).
    public static void PpoCategorical(Index1D t, ArrayView<float> logits, ArrayView<float> values, ArrayView<int> actions,
        ArrayView<float> oldLogProbs, ArrayView<float> oldValues, ArrayView<float> advantages, ArrayView<float> returns,
        ArrayView<float> dLogits, ArrayView<float> dValues, ArrayView<float> metrics, PpoScalars s, Stride g)
    {
        for (int b = t; b < g.Total; b += g.Threads)
            PpoCategoricalRow(b, logits, values, actions, oldLogProbs, oldValues, advantages, returns, dLogits, dValues, metrics, s);
    }

    private static void PpoCategoricalRow(int b, ArrayView<float> logits, ArrayView<float> values, ArrayView<int> actions,
        ArrayView<float> oldLogProbs, ArrayView<float> oldValues, ArrayView<float> advantages, ArrayView<float> returns,
        ArrayView<float> dLogits, ArrayView<float> dValues, ArrayView<float> metrics, PpoScalars s)
    {
        int k = s.ActionSize, row = b * k;
        float max = float.NegativeInfinity;
        for (int j = 0; j < k; j++) max = XMath.Max(max, logits[row + j]);
        double sum = 0;
        for (int j = 0; j < k; j++) sum += XMath.Exp((double)(logits[row + j] - max));
        float logZ = max + (float)XMath.Log(sum);
        double h = 0;
        for (int j = 0; j < k; j++)
        {
            float lp = logits[row + j] - logZ;
            h -= XMath.Exp((double)lp) * lp;
        }
        int a = actions[b];
        float newLogProb = logits[row + a] - logZ;
        double dLogProb = Surrogate(b, newLogProb, (float)h, oldLogProbs, advantages, metrics, s);
        double dEntropy = -s.EntCoef / s.Batch;
        for (int j = 0; j < k; j++)
        {
            float lp = logits[row + j] - logZ;
            double p = XMath.Exp((double)lp);
            double g = (float)dLogProb * ((j == a ? 1 : 0) - p) - (float)dEntropy * p * (lp + h);
            dLogits[row + j] = (float)g;
        }
        ValueLoss(b, values, oldValues, returns, dValues, metrics, s);
    }

    // The same for a diagonal Gaussian (DiagGaussian.LogProb / Entropy / Backward): d loss / d mean per sample, and
    // d loss / d log σ per sample into dLogStdRows (summed over samples by ColumnSumAdd).
    public static void PpoGaussian(Index1D t, ArrayView<float> mean, ArrayView<float> logStd, ArrayView<float> actions,
        ArrayView<float> values, ArrayView<float> oldLogProbs, ArrayView<float> oldValues, ArrayView<float> advantages, ArrayView<float> returns,
        ArrayView<float> dMean, ArrayView<float> dLogStdRows, ArrayView<float> dValues, ArrayView<float> metrics, PpoScalars s, Stride g)
    {
        for (int b = t; b < g.Total; b += g.Threads)
            PpoGaussianRow(b, mean, logStd, actions, values, oldLogProbs, oldValues, advantages, returns, dMean, dLogStdRows, dValues, metrics, s);
    }

    private static void PpoGaussianRow(int b, ArrayView<float> mean, ArrayView<float> logStd, ArrayView<float> actions,
        ArrayView<float> values, ArrayView<float> oldLogProbs, ArrayView<float> oldValues, ArrayView<float> advantages, ArrayView<float> returns,
        ArrayView<float> dMean, ArrayView<float> dLogStdRows, ArrayView<float> dValues, ArrayView<float> metrics, PpoScalars s)
    {
        int k = s.ActionSize, row = b * k;
        double lp = 0, ent = 0;
        for (int i = 0; i < k; i++)
        {
            double z = (actions[row + i] - mean[row + i]) / XMath.Exp((double)logStd[i]);
            lp += -0.5 * z * z - logStd[i] - HalfLog2Pi;
            ent += 0.5 + HalfLog2Pi + logStd[i];
        }
        double dLogProb = Surrogate(b, (float)lp, (float)ent, oldLogProbs, advantages, metrics, s);
        float gLogProb = (float)dLogProb, gEntropy = (float)(-s.EntCoef / s.Batch);
        for (int i = 0; i < k; i++)
        {
            double var = XMath.Exp(2.0 * logStd[i]), d = actions[row + i] - mean[row + i];
            dMean[row + i] = (float)(gLogProb * d / var);
            dLogStdRows[row + i] = (float)(gLogProb * (d * d / var - 1) + gEntropy);
        }
        ValueLoss(b, values, oldValues, returns, dValues, metrics, s);
    }

    // The clipped surrogate for one sample; records its metrics and returns d loss / d log π(a).
    private static double Surrogate(int b, float newLogProb, float entropy, ArrayView<float> oldLogProbs, ArrayView<float> advantages,
        ArrayView<float> metrics, PpoScalars s)
    {
        double logRatio = newLogProb - oldLogProbs[b], ratio = XMath.Exp(logRatio);
        bool isClipped = XMath.Abs(ratio - 1) > s.ClipCoef;
        double adv = advantages[b], clippedRatio = XMath.Clamp(ratio, 1 - s.ClipCoef, 1 + s.ClipCoef);
        double l1 = -adv * ratio, l2 = -adv * clippedRatio;
        int m = b * 7;
        metrics[m] = (float)XMath.Max(l1, l2);
        metrics[m + 2] = entropy;
        metrics[m + 3] = (float)-logRatio;
        metrics[m + 4] = (float)(ratio - 1 - logRatio);
        metrics[m + 5] = isClipped ? 1f : 0f;
        return (l1 >= l2 ? -adv * ratio : (isClipped ? 0 : -adv * ratio)) / s.Batch;
    }

    private static void ValueLoss(int b, ArrayView<float> values, ArrayView<float> oldValues, ArrayView<float> returns,
        ArrayView<float> dValues, ArrayView<float> metrics, PpoScalars s)
    {
        double v = values[b], ret = returns[b], vOld = oldValues[b], e1 = v - ret;
        if (s.ClipValueLoss != 0)
        {
            double vClipped = vOld + XMath.Clamp(v - vOld, -s.ClipCoef, s.ClipCoef), e2 = vClipped - ret;
            bool first = e1 * e1 >= e2 * e2;
            metrics[b * 7 + 1] = (float)(0.5 * XMath.Max(e1 * e1, e2 * e2));
            bool inside = XMath.Abs(v - vOld) < s.ClipCoef;
            dValues[b] = (float)(s.VfCoef * (first ? e1 : (inside ? e2 : 0)) / s.Batch);
        }
        else
        {
            metrics[b * 7 + 1] = (float)(0.5 * e1 * e1);
            dValues[b] = (float)(s.VfCoef * e1 / s.Batch);
        }
    }

    // Adam.ClipGradNorm, part 1: the sum of squares, each thread over a strided share, added atomically to sumSq[0].
    public static void SumOfSquares(Index1D t, ArrayView<float> g, ArrayView<double> sumSq, int threads)
    {
        double s = 0;
        for (long i = t; i < g.Length; i += threads) s += (double)g[i] * g[i];
        Atomic.Add(ref sumSq[0], s);
    }

    // Part 2: scale by maxNorm / (norm + 1e-6) when the norm exceeds maxNorm (decided on the device: no round trip).
    public static void ClipByNorm(Index1D t, ArrayView<float> g, ArrayView<double> sumSq, float maxNorm, Stride st)
    {
        double norm = XMath.Sqrt(sumSq[0]);
        if (norm <= maxNorm) return;
        float factor = (float)(maxNorm / (norm + 1e-6));
        for (int i = t; i < st.Total; i += st.Threads) g[i] *= factor;
    }

    // Adam.Step.
    public static void Adam(Index1D t, ArrayView<float> p, ArrayView<float> g, ArrayView<float> m, ArrayView<float> v, AdamScalars s, Stride st)
    {
        for (int i = t; i < st.Total; i += st.Threads)
        {
            float gi = g[i];
            float mi = m[i] = s.Beta1 * m[i] + (1 - s.Beta1) * gi;
            float vi = v[i] = s.Beta2 * v[i] + (1 - s.Beta2) * gi * gi;
            p[i] -= s.StepSize * mi / (XMath.Sqrt(vi) / s.SqrtC2 + s.Eps);
        }
    }

    // Scales every element (the mean of an all-reduced sum).
    public static void Scale(Index1D t, ArrayView<float> x, float factor, Stride st)
    {
        for (int i = t; i < st.Total; i += st.Threads) x[i] *= factor;
    }
}
