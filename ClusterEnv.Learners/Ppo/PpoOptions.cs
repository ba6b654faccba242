using ClusterEnv.Policies;
namespace ClusterEnv.Learners.Ppo;

/// <summary>
/// PPO hyperparameters, CleanRL's <c>ppo.py</c> defaults (CartPole). <see cref="ContinuousDefaults"/> gives
/// <c>ppo_continuous_action.py</c>'s. Validated once by <see cref="Validate"/>.
/// </summary>
public sealed record PpoOptions
{
    /// <summary>Seed of the policy's initialisation, action sampling and minibatch shuffling; envs are reset with it.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Total env steps to train for (all envs together).</summary>
    public long TotalTimesteps { get; init; } = 500_000;

    /// <summary>Adam's learning rate at the start.</summary>
    public double LearningRate { get; init; } = 2.5e-4;

    /// <summary>Anneal the learning rate linearly to 0 over the iterations.</summary>
    public bool AnnealLearningRate { get; init; } = true;

    /// <summary>Steps per env per rollout.</summary>
    public int NumSteps { get; init; } = 128;

    /// <summary>Discount γ.</summary>
    public double Gamma { get; init; } = 0.99;

    /// <summary>GAE λ.</summary>
    public double GaeLambda { get; init; } = 0.95;

    /// <summary>Minibatches per epoch.</summary>
    public int NumMinibatches { get; init; } = 4;

    /// <summary>Epochs over each rollout.</summary>
    public int UpdateEpochs { get; init; } = 4;

    /// <summary>Normalise advantages per minibatch.</summary>
    public bool NormalizeAdvantages { get; init; } = true;

    /// <summary>Surrogate clipping ε (also the value clipping range).</summary>
    public double ClipCoef { get; init; } = 0.2;

    /// <summary>Clip the value loss around the old values.</summary>
    public bool ClipValueLoss { get; init; } = true;

    /// <summary>Entropy bonus coefficient.</summary>
    public double EntCoef { get; init; } = 0.01;

    /// <summary>Value loss coefficient.</summary>
    public double VfCoef { get; init; } = 0.5;

    /// <summary>Global gradient-norm clip.</summary>
    public double MaxGradNorm { get; init; } = 0.5;

    /// <summary>Stop an update's epochs early once approx-KL exceeds this (null: never).</summary>
    public double? TargetKl { get; init; }

    /// <summary>Adam's epsilon (CleanRL: 1e-5).</summary>
    public double AdamEps { get; init; } = 1e-5;

    /// <summary>Hidden layer widths of the actor and of the critic; with <see cref="Encoder"/>, of the heads on its features.</summary>
    public int[] Hidden { get; init; } = [64, 64];

    /// <summary>A convolutional torso for image observations ("nature" or "small", <see cref="EncoderSpec"/>), shared by actor and critic; null: MLPs on vector observations.</summary>
    public string? Encoder { get; init; }

    /// <summary>A folder for checkpoints (policy with its observation statistics, optimizer, random state, counters), as IMPALA writes them; null writes none.</summary>
    public string? CheckpointDirectory { get; init; }

    /// <summary>Write a checkpoint every this many iterations (and always one at the end, finished or stopped); 0: only at the end.</summary>
    public int CheckpointEvery { get; init; } = 100;

    /// <summary>How many of the newest checkpoints to keep.</summary>
    public int KeepCheckpoints { get; init; } = 3;

    /// <summary>Normalise observations with running statistics and clip them to ±<see cref="ObservationClip"/> (continuous defaults).</summary>
    public bool NormalizeObservations { get; init; }

    /// <summary>Clip of normalised observations.</summary>
    public double ObservationClip { get; init; } = 10;

    /// <summary>Scale rewards by the running std of the discounted return and clip them to ±<see cref="RewardClip"/> (continuous defaults).</summary>
    public bool NormalizeRewards { get; init; }

    /// <summary>Clip of scaled rewards.</summary>
    public double RewardClip { get; init; } = 10;

    /// <summary>
    /// Treat truncation as termination (no bootstrap from the final observation), reproducing CleanRL exactly. Off by
    /// default: a time limit is not a terminal state.
    /// </summary>
    public bool TruncationAsTermination { get; init; }

    /// <summary>Mean return over the last 20 episodes to report first reaching (default: the env's registry threshold).</summary>
    public double? RewardThreshold { get; init; }

    /// <summary>
    /// Data-parallel training: this learner is one rank of a world (<see cref="Distributed.MpiCollective"/> under
    /// mpirun or srun). Every rank steps its own envs (seeded apart by rank), starts from rank 0's weights, and
    /// all-reduces the gradient of each minibatch (and the advantage statistics and KL that decide the update), so
    /// every rank takes the same optimizer step; the weights are checked identical after every iteration.
    /// <see cref="TotalTimesteps"/> counts all ranks' steps. Null: a world of 1.
    /// </summary>
    public Distributed.ICollective? Collective { get; init; }

    /// <summary>
    /// With <see cref="Collective"/>: gradients are all-reduced in buckets of up to this many floats while backward still
    /// runs (<see cref="Distributed.GradientBuckets"/>: a bucket starts once its layers' gradients are final, so the
    /// actor's travel while the critic's backward runs; <see cref="Distributed.GradientBuckets.DefaultCapacity"/> is
    /// PyTorch DDP's first bucket). 0 (the default): one all-reduce of the whole buffer after backward. Either way every
    /// rank takes the same step. Buckets pay where the wire is slow next to backward (ranks on several nodes); on one
    /// node the ranks' cores are busy with backward and there is nothing to hide the all-reduce behind (measured
    /// 0.97× for a 9.8k-parameter net and 0.48× for 0.54M, docs/results/ddp).
    /// </summary>
    public int GradientBucketSize { get; init; }

    /// <summary>
    /// Where the update runs: null (the default) on this project's CPU engine; "cuda" / "cuda:N" on an NVIDIA GPU
    /// (<see cref="Gpu.GpuDevice"/>: networks, gradients and Adam in device memory, GEMMs on cuBLAS); "cpu-kernels" runs
    /// the same device kernels on ILGPU's CPU accelerator (for checking, not speed). The acting policy stays on the CPU
    /// and gets the new weights after every update. With data-parallel ranks on GPUs, pass an
    /// <see cref="Gpu.NcclCollective"/> as <see cref="Collective"/> to all-reduce in device memory.
    /// </summary>
    public string? Device { get; init; }

    /// <summary>CleanRL's <c>ppo_continuous_action.py</c> defaults.</summary>
    public static PpoOptions ContinuousDefaults => new()
    {
        TotalTimesteps = 1_000_000, LearningRate = 3e-4, NumSteps = 2048, NumMinibatches = 32, UpdateEpochs = 10, EntCoef = 0.0,
        NormalizeObservations = true, NormalizeRewards = true,
    };

    /// <summary>Throws naming the first invalid setting.</summary>
    public void Validate(int numEnvs)
    {
        if (GradientBucketSize < 0) throw new ArgumentOutOfRangeException(nameof(GradientBucketSize), GradientBucketSize, "GradientBucketSize must be >= 0 (0: one all-reduce of all gradients after backward).");

        if (TotalTimesteps <= 0) throw new ArgumentOutOfRangeException(nameof(TotalTimesteps), TotalTimesteps, "TotalTimesteps must be positive.");
        if (CheckpointEvery < 0) throw new ArgumentOutOfRangeException(nameof(CheckpointEvery), CheckpointEvery, "CheckpointEvery must be >= 0 (0: only the final checkpoint).");
        if (KeepCheckpoints < 1) throw new ArgumentOutOfRangeException(nameof(KeepCheckpoints), KeepCheckpoints, "KeepCheckpoints must be >= 1.");
        if (NumSteps <= 0) throw new ArgumentOutOfRangeException(nameof(NumSteps), NumSteps, "NumSteps must be positive.");
        if (NumMinibatches <= 0 || NumMinibatches > NumSteps * numEnvs)
            throw new ArgumentOutOfRangeException(nameof(NumMinibatches), NumMinibatches, $"NumMinibatches must be in 1..{NumSteps * numEnvs} (the batch size).");
        if (UpdateEpochs <= 0) throw new ArgumentOutOfRangeException(nameof(UpdateEpochs), UpdateEpochs, "UpdateEpochs must be positive.");
        if (LearningRate <= 0) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "LearningRate must be positive.");
        if (Gamma is <= 0 or > 1) throw new ArgumentOutOfRangeException(nameof(Gamma), Gamma, "Gamma must be in (0, 1].");
        if (GaeLambda is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(GaeLambda), GaeLambda, "GaeLambda must be in [0, 1].");
        if (ClipCoef <= 0) throw new ArgumentOutOfRangeException(nameof(ClipCoef), ClipCoef, "ClipCoef must be positive.");
        if (MaxGradNorm <= 0) throw new ArgumentOutOfRangeException(nameof(MaxGradNorm), MaxGradNorm, "MaxGradNorm must be positive.");
        if (Hidden is null || (Encoder is null && Hidden.Length == 0) || Hidden.Any(h => h <= 0)) throw new ArgumentException("Hidden needs at least one positive layer width, e.g. [64, 64] (none only with an Encoder).");
        if (Encoder is not null && !EncoderSpec.Kinds.Contains(Encoder)) throw new ArgumentException($"Encoder '{Encoder}' is not one of {string.Join(", ", EncoderSpec.Kinds)}.");
        if (Encoder is not null && NormalizeObservations) throw new ArgumentException("An image encoder scales pixels by 1/255; turn NormalizeObservations off with it.");
    }

    /// <summary>Rollout size per iteration.</summary>
    public int BatchSize(int numEnvs) => NumSteps * numEnvs;

    /// <summary>Number of iterations.</summary>
    public int NumIterations(int numEnvs) => (int)(TotalTimesteps / BatchSize(numEnvs));
}
