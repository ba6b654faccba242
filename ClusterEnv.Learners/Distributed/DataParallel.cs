using ClusterEnv.Policies;

namespace ClusterEnv.Learners.Distributed;

/// <summary>The steps a data-parallel learner shares between PPO and IMPALA: the same start, the same stop, the same statistics.</summary>
public static class DataParallel
{
    /// <summary>Rank r's seed for its envs and action sampling (rank 0 keeps <paramref name="seed"/>, so a world of 1 is unchanged).</summary>
    public static long RankSeed(long seed, ICollective dp) => seed + 100_003L * dp.Rank;

    /// <summary>
    /// Before the first update: every rank takes rank 0's initial weights, and every rank must bring the same batch
    /// shape (<paramref name="batchSize"/> samples per update), or the ranks would disagree on the number of all-reduces.
    /// </summary>
    public static void Start(ICollective dp, Span<float> weights, int batchSize) => Start(dp, weights, batchSize, 0);

    /// <summary>
    /// <see cref="Start(ICollective, Span{float}, int)"/>, also checking that every rank buckets its gradients the same
    /// way (<paramref name="gradientBucketSize"/>): ranks that cut the buffer differently would start different all-reduces.
    /// </summary>
    public static void Start(ICollective dp, Span<float> weights, int batchSize, int gradientBucketSize)
    {
        if (dp.WorldSize == 1) return;
        Span<double> sizes = [batchSize, -batchSize, weights.Length, -weights.Length, gradientBucketSize, -gradientBucketSize];
        dp.AllReduce(sizes, ReduceOp.Max);
        if (sizes[0] != -sizes[1])
            throw new CollectiveException($"Rank {dp.Rank}: the ranks collect batches of different sizes (this one {batchSize}, others up to {sizes[0]} and down to {-sizes[1]}); give every rank the same number of envs and steps.");
        if (sizes[2] != -sizes[3])
            throw new CollectiveException($"Rank {dp.Rank}: the ranks built networks of different sizes ({weights.Length} parameters here); every rank needs the same env and network.");
        if (sizes[4] != -sizes[5])
            throw new CollectiveException($"Rank {dp.Rank}: the ranks bucket their gradients differently (GradientBucketSize {gradientBucketSize} here, others up to {sizes[4]} and down to {-sizes[5]}); give every rank the same setting.");
        dp.Broadcast(weights, 0);
    }

    /// <summary>
    /// The backward pass of the last <see cref="ActorCritic.Forward"/> and, over several ranks, the average of the
    /// gradients: bucketed while backward runs when <paramref name="bucketSize"/> &gt; 0 (<paramref name="buckets"/>
    /// is created on first use and kept by the caller), else one all-reduce of the whole buffer afterwards.
    /// </summary>
    public static void BackwardAndAverage(ICollective dp, ActorCritic policy, ReadOnlySpan<float> gradHead, ReadOnlySpan<float> gradValues,
        int bucketSize, ref GradientBuckets? buckets)
    {
        if (dp.WorldSize == 1 || bucketSize == 0)
        {
            policy.Backward(gradHead, gradValues);
            if (dp.WorldSize > 1) dp.AllReduce(policy.Store.Grads, ReduceOp.Mean); // one flat buffer, between backward and clipping
            return;
        }
        if (buckets is null || !buckets.Covers(policy.Store.Grads, dp)) buckets = new GradientBuckets(dp, policy.Store.Grads, bucketSize);
        policy.Backward(gradHead, gradValues, buckets);
        buckets.Finish();
    }

    /// <summary>Whether any rank wants to stop (a signal reached one of them): all ranks stop at the same update.</summary>
    public static bool AnyStopped(ICollective dp, bool stopHere)
    {
        if (dp.WorldSize == 1) return stopHere;
        Span<double> flag = [stopHere ? 1 : 0];
        dp.AllReduce(flag, ReduceOp.Max);
        return flag[0] > 0;
    }

    /// <summary>
    /// After each rank took its batch: whether any rank came up short (it stopped while waiting), and the steps all
    /// ranks have consumed together (<paramref name="consumedHere"/> summed), which drives the schedule and the budget.
    /// </summary>
    public static (bool AnyShort, long Total) Agree(ICollective dp, bool shortHere, long consumedHere)
    {
        if (dp.WorldSize == 1) return (shortHere, consumedHere);
        Span<double> v = [shortHere ? 1 : 0, consumedHere];
        dp.AllReduce(v, ReduceOp.Sum);
        return (v[0] > 0, (long)v[1]);
    }

    /// <summary>The mean of <paramref name="value"/> over the ranks.</summary>
    public static double Mean(ICollective dp, double value)
    {
        if (dp.WorldSize == 1) return value;
        Span<double> v = [value];
        dp.AllReduce(v, ReduceOp.Mean);
        return v[0];
    }

    /// <summary>
    /// The union moments of every minibatch of an epoch at once: minibatch m is advantages[indices[start..end]] with
    /// start = m·count/M, end = (m+1)·count/M, as PPO slices it. One all-reduce of (Σx, Σx², n) per minibatch, all in
    /// one call, instead of one call per minibatch (each call is a synchronisation point of the ranks; halving them
    /// is most of what separates 2 ranks from 2× one). Returns (mean, std) per minibatch, std NaN when the union has
    /// fewer than 2 values (then it is left as it is).
    /// </summary>
    public static (double Mean, double Std)[] UnionMoments(ICollective dp, ReadOnlySpan<float> advantages, ReadOnlySpan<int> indices, int minibatches)
    {
        int count = indices.Length;
        var totals = new double[3 * minibatches];
        for (int m = 0; m < minibatches; m++)
        {
            int start = (int)((long)m * count / minibatches), end = (int)((long)(m + 1) * count / minibatches);
            double sum = 0, sq = 0;
            for (int i = start; i < end; i++)
            {
                float v = advantages[indices[i]];
                sum += v;
                sq += (double)v * v;
            }
            totals[3 * m] = sum;
            totals[3 * m + 1] = sq;
            totals[3 * m + 2] = end - start;
        }
        dp.AllReduce(totals, ReduceOp.Sum);
        var moments = new (double, double)[minibatches];
        for (int m = 0; m < minibatches; m++)
        {
            double n = totals[3 * m + 2];
            if (n < 2) { moments[m] = (0, double.NaN); continue; }
            double mean = totals[3 * m] / n, var = Math.Max(0, (totals[3 * m + 1] - totals[3 * m] * mean) / (n - 1));
            moments[m] = (mean, Math.Sqrt(var));
        }
        return moments;
    }

    /// <summary>x ← (x − mean) / (std + 1e-8), as <see cref="NormalizeUnbiased"/> does with the union's moments; nothing when std is NaN.</summary>
    public static void Normalize(Span<float> x, (double Mean, double Std) moments)
    {
        if (double.IsNaN(moments.Std)) return;
        for (int i = 0; i < x.Length; i++) x[i] = (float)((x[i] - moments.Mean) / (moments.Std + 1e-8));
    }

    /// <summary>
    /// Normalises <paramref name="x"/> by the mean and unbiased standard deviation of all ranks' values together (as
    /// if the ranks' minibatches were one), so that the normalised advantages do not depend on how data is split.
    /// </summary>
    public static void NormalizeUnbiased(ICollective dp, Span<float> x)
    {
        // One all-reduce of (Σx, Σx², n) in double: the mean and unbiased variance of the union.
        double sum = 0, sq = 0;
        foreach (float v in x)
        {
            sum += v;
            sq += (double)v * v;
        }
        Span<double> totals = [sum, sq, x.Length];
        dp.AllReduce(totals, ReduceOp.Sum);
        double n = totals[2];
        if (n < 2) return;
        double mean = totals[0] / n, var = Math.Max(0, (totals[1] - totals[0] * mean) / (n - 1));
        double std = Math.Sqrt(var);
        for (int i = 0; i < x.Length; i++) x[i] = (float)((x[i] - mean) / (std + 1e-8));
    }
}
