using ClusterEnv.Policies;
using ClusterEnv.Sync;
namespace ClusterEnv.Learners.Impala;

/// <summary>
/// IMPALA's settings (Espeholt et al. 2018) and IMPACT's (Luo et al. 2020), defaulting to TorchBeast's monobeast
/// where that project sets a value, and saying where this one differs and why.
/// </summary>
public sealed record ImpalaOptions
{
    /// <summary>Random seed for initialisation, local envs and sampling.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Env steps to consume in total (rollouts dropped as too stale do not count).</summary>
    public long TotalTimesteps { get; init; } = 1_000_000;

    /// <summary>Unroll length T, the steps of every rollout: the paper's 20 (TorchBeast uses 80 for Atari's long episodes).</summary>
    public int UnrollLength { get; init; } = 20;

    /// <summary>
    /// Rollouts per learner step. TorchBeast batches 8 single-env unrolls; here a rollout holds all of one worker's
    /// sub-envs (T × n samples), so a batch of 1 already carries n unrolls.
    /// </summary>
    public int BatchSize { get; init; } = 1;

    /// <summary>Discount γ: 0.99 in the paper and TorchBeast.</summary>
    public double Gamma { get; init; } = 0.99;

    /// <summary>ρ̄, the clip of the importance weight in the value target: 1 in the paper.</summary>
    public double RhoBar { get; init; } = 1.0;

    /// <summary>c̄, the clip of the trace coefficients: 1 in the paper.</summary>
    public double CBar { get; init; } = 1.0;

    /// <summary>λ of the V-trace λ variant: 1 in the paper (no extra decay of the trace).</summary>
    public double Lambda { get; init; } = 1.0;

    /// <summary>ρ̄ of the policy-gradient advantage: 1 in the paper.</summary>
    public double PgRhoBar { get; init; } = 1.0;

    /// <summary>Weight of the baseline (value) loss: 0.5 in the paper and TorchBeast.</summary>
    public double BaselineCost { get; init; } = 0.5;

    /// <summary>Weight of the entropy bonus: 0.01, the paper's value (TorchBeast's 0.0006 is tuned for Atari's 18 actions and long runs; 0.01 keeps exploration on small tasks).</summary>
    public double EntropyCost { get; init; } = 0.01;

    /// <summary>
    /// KL-adaptive learning rate: when one optimizer step moves the policy by more than twice this KL (mean over the
    /// batch), the next steps' learning rate shrinks by 1.5×; below half of it, it grows back by 1.5× up to the schedule's.
    /// 0 turns it off.
    /// </summary>
    public double TargetUpdateKl { get; init; }

    /// <summary>
    /// Normalise observations with running statistics of the raw observations the learner receives (as PPO's
    /// <c>NormalizeObservations</c> and Gymnasium's <c>NormalizeObservation</c>): they belong to the policy
    /// (<see cref="ClusterEnv.Policies.ActorCritic.Normalizer"/>), travel with every weight push and are saved in checkpoints; data-parallel
    /// ranks all-reduce the moments. Matters where observations have very different scales (MountainCarContinuous's
    /// velocity is about 1/20 of its position).
    /// </summary>
    public bool NormalizeObservations { get; init; }

    /// <summary>Normalised observations are clipped to [−ObservationClip, ObservationClip].</summary>
    public double ObservationClip { get; init; } = 10;

    /// <summary>
    /// A trust region on every optimizer step: when a step moved the policy further than this (the mean KL between the
    /// policy before and after it, over the batch; all ranks' mean in data-parallel training), the actor's part of the
    /// step is shrunk by √(MaxUpdateKl / KL), as KL grows with the square of a small step. It caps the rare large steps
    /// that a burst of failures brings after a long run of good episodes, without slowing the ordinary ones. 0 turns it off.
    /// </summary>
    public double MaxUpdateKl { get; init; }

    /// <summary>
    /// The critic learns returns scaled to the running mean and standard deviation of the V-trace targets (Sample
    /// Factory's <c>normalize_returns</c>); its outputs are unscaled for V-trace.
    /// </summary>
    public bool NormalizeReturns { get; init; }

    /// <summary>Scale the policy-gradient advantages of every learner step to mean 0 and standard deviation 1.</summary>
    public bool NormalizeAdvantages { get; init; }

    /// <summary>Rewards clipped to [−1, 1] before the targets (TorchBeast's <c>abs_one</c>); off by default here because classic-control rewards are already small and Pendulum's would be distorted.</summary>
    public bool ClipRewards { get; init; }

    /// <summary>
    /// Learning rate of Adam. TorchBeast uses RMSProp at 4.8e-4 (α 0.99, ε 0.01, linear decay); this engine ships Adam,
    /// and 1e-3 with decay is what CartPole and Acrobot need here within 1M steps.
    /// </summary>
    public double LearningRate { get; init; } = DefaultLearningRate;

    /// <summary>Decay the learning rate linearly to 0 over <see cref="TotalTimesteps"/>, as TorchBeast does.</summary>
    public bool AnnealLearningRate { get; init; } = true;

    /// <summary>Adam's ε.</summary>
    public double AdamEps { get; init; } = 1e-5;

    /// <summary>Global gradient-norm clip: 40 in the paper and TorchBeast.</summary>
    public double MaxGradNorm { get; init; } = 40;

    /// <summary>Hidden layer sizes of the actor and critic MLPs (CleanRL's 64 × 64 for classic control); with <see cref="Encoder"/>, of the heads on its features.</summary>
    public int[] Hidden { get; init; } = [64, 64];

    /// <summary>A convolutional torso for image observations ("nature" or "small", <see cref="EncoderSpec"/>), shared by actor and critic; null: MLPs on vector observations.</summary>
    public string? Encoder { get; init; }

    /// <summary>Rollouts each streaming worker may hold in flight (acting, on the wire or queued) at the start, and at least.</summary>
    public int Credit { get; init; } = 2;

    /// <summary>
    /// The most rollouts a streaming worker may hold in flight: when the learner waits for rollouts while a worker
    /// waits for credit, that worker's window widens by one rollout, up to this, so a long round trip does not starve
    /// the learner; windows narrow back to <see cref="Credit"/> when rollouts pile up. Equal to <see cref="Credit"/>:
    /// a fixed window. Memory: up to this many rollouts per worker can wait at the learner before the windows narrow
    /// (an in-memory queue is sized for it). On the 20 ms links of scripts/netsim, 8 kept 0.45-0.95× of the 0.2 ms
    /// throughput in single runs and 32 kept 0.97-1.05× in the median of five pairs (docs/results/scale-out).
    /// </summary>
    public int MaxCredit { get; init; } = 32;

    /// <summary>
    /// Rollouts acted by a policy more than this many versions older than the learner's are dropped and counted
    /// (sample-factory's <c>max_policy_lag</c>), and a worker that falls one version short of it is pushed the newest
    /// weights whatever the sync strategy says, so its next rollouts are kept. 0 means no limit. Null (the default):
    /// <see cref="DefaultMaxPolicyLag"/>, except under a plain KL threshold (τ without a lag cap), where APS's KL
    /// already bounds how far the acting policy may drift from the learner's: a version limit there pushes every 49
    /// updates whatever the KL says (on CartPole across 20 ms links: 256-285 pushes in 1M steps with it, 8-63 without) and would drop
    /// rollouts that are close to on-policy. <see cref="PolicyLagLimit"/> says which limit is in force.
    /// </summary>
    public int? MaxPolicyLag { get; init; }

    /// <summary>The version limit of <see cref="MaxPolicyLag"/> when it is not set and the strategy is not a plain KL threshold.</summary>
    public const int DefaultMaxPolicyLag = 50;

    /// <summary>
    /// The version limit in force with workers acting under <paramref name="strategy"/> (null: the learner acts):
    /// <see cref="MaxPolicyLag"/> when set; otherwise none under a KL threshold without a lag cap, and
    /// <see cref="DefaultMaxPolicyLag"/> under every other strategy.
    /// </summary>
    public int PolicyLagLimit(SyncStrategy? strategy) =>
        MaxPolicyLag ?? (strategy is { Kind: SyncKind.KlThreshold, MaxLag: 0 } ? 0 : DefaultMaxPolicyLag);

    /// <summary>Overrides the env's registry threshold for reporting steps to threshold (null: the registry's).</summary>
    public double? RewardThreshold { get; init; }

    // ---- checkpoints ----

    /// <summary>A folder for checkpoints (policy, optimizer, random state, counters); null writes none.</summary>
    public string? CheckpointDirectory { get; init; }

    /// <summary>Write a checkpoint every this many updates (and always one at the end, finished or stopped).</summary>
    public int CheckpointEvery { get; init; } = 500;

    /// <summary>How many of the newest checkpoints to keep.</summary>
    public int KeepCheckpoints { get; init; } = 3;

    /// <summary>
    /// A checkpoint folder, or a run folder (its newest checkpoint), to continue from: weights, statistics, optimizer,
    /// random state and counters; <see cref="TotalTimesteps"/> stays the whole run's budget. With the same rollouts,
    /// IMPALA continues bit for bit; IMPACT starts with an empty replay buffer and its target network equal to the policy.
    /// Envs and workers start afresh (their state is not in the checkpoint).
    /// </summary>
    public string? ResumeFrom { get; init; }

    // ---- IMPACT ----

    /// <summary>IMPACT instead of IMPALA: a target network, a circular replay buffer and a clipped surrogate on the ratio against the target.</summary>
    public bool Impact { get; init; }

    /// <summary>IMPACT: copy the learner into the target network every this many learner steps.</summary>
    public int TargetUpdateFrequency { get; init; } = 1;

    /// <summary>IMPACT: learner steps per arriving batch (it is trained on once, then batches drawn from the buffer fill the rest).</summary>
    public int ReplayTimes { get; init; } = 2;

    /// <summary>IMPACT: batches the circular buffer holds (1: each batch is replayed <see cref="ReplayTimes"/> times in a row, then evicted).</summary>
    public int ReplayBufferSize { get; init; } = 1;

    /// <summary>IMPACT: the clip ε of the surrogate, as PPO's.</summary>
    public double ClipCoef { get; init; } = 0.2;

    /// <summary>IMPACT: the upper clip of π_target/μ, the truncated importance weight (RLlib APPO uses 2).</summary>
    public double TargetRatioClip { get; init; } = 2.0;

    /// <summary>
    /// IMPACT on top of these settings. IMPALA's default learning rate (1e-3) becomes the one IMPACT was measured best
    /// with here (7e-4: every sample takes <see cref="ReplayTimes"/> optimizer steps, and 1e-3 then overshoots on
    /// CartPole); a rate chosen otherwise (<see cref="ImageDefaults"/>' 3e-4, or the caller's) is kept.
    /// </summary>
    public ImpalaOptions AsImpact() => this with { Impact = true, LearningRate = LearningRate == DefaultLearningRate ? 7e-4 : LearningRate };

    private const double DefaultLearningRate = 1e-3;

    /// <summary>
    /// The defaults for continuous actions (a Gaussian policy), measured on Pendulum-v1 through the cluster
    /// (docs/results/learning): observations and returns normalised (Pendulum's returns reach −1,600; MountainCarContinuous's
    /// velocity is 1/20 of its position's scale), no entropy bonus (a Gaussian's entropy grows without bound under one,
    /// as in CleanRL's <c>ppo_continuous_action.py</c>, ent_coef 0), and a per-step KL trust region
    /// (<see cref="MaxUpdateKl"/> 1e-3) against the steps that stale rollouts otherwise make.
    /// </summary>
    public static ImpalaOptions ContinuousDefaults => new() { NormalizeObservations = true, NormalizeReturns = true, EntropyCost = 0, MaxUpdateKl = 1e-3 };

    /// <summary>
    /// For image observations through a CNN torso (<see cref="Encoder"/>, default "small"): returns normalised (the
    /// value loss of unscaled returns, back through the shared torso, swamps the policy's gradient), a smaller step
    /// (3e-4) and CleanRL's Atari gradient clip (0.5).
    /// </summary>
    public static ImpalaOptions ImageDefaults(string encoder = "small") =>
        new() { Encoder = encoder, Hidden = [], NormalizeReturns = true, LearningRate = 3e-4, MaxGradNorm = 0.5 };

    /// <summary><see cref="ContinuousDefaults"/> for a continuous action space, the plain defaults otherwise.</summary>
    public static ImpalaOptions DefaultsFor(ClusterEnv.Spaces.Space actionSpace) => actionSpace is ClusterEnv.Spaces.Box ? ContinuousDefaults : new();

    /// <summary>
    /// Most per-update metrics kept in <see cref="ImpalaResult.History"/> (the newest; 0 keeps all). Long runs set it so
    /// that memory stays flat: the metrics CSV and TensorBoard have every update anyway.
    /// </summary>
    public int HistoryLimit { get; init; }

    /// <summary>
    /// Data-parallel training: this learner is one rank of a world (<see cref="Distributed.MpiCollective"/> under
    /// mpirun or srun), each rank with its own workers. Every rank starts from rank 0's weights and all-reduces the
    /// gradient of every learner step, so all ranks take the same optimizer steps (checked after every update); rank
    /// 0 alone writes checkpoints. <see cref="TotalTimesteps"/> counts all ranks' steps. Null: a world of 1.
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

    /// <summary>Throws, naming the setting and the fix, when a value cannot work.</summary>
    public void Validate()
    {
        if (GradientBucketSize < 0) throw new ArgumentOutOfRangeException(nameof(GradientBucketSize), GradientBucketSize, "GradientBucketSize must be >= 0 (0: one all-reduce of all gradients after backward).");

        if (HistoryLimit < 0) throw new ArgumentOutOfRangeException(nameof(HistoryLimit), HistoryLimit, "HistoryLimit must be 0 (keep all) or positive.");
        if (Encoder is not null && !EncoderSpec.Kinds.Contains(Encoder)) throw new ArgumentException($"Encoder '{Encoder}' is not one of {string.Join(", ", EncoderSpec.Kinds)}.");
        void Positive(double v, string name) { if (!(v > 0) || !double.IsFinite(v)) throw new ArgumentOutOfRangeException(name, v, $"{name} must be a finite number > 0."); }
        Positive(UnrollLength, nameof(UnrollLength));
        Positive(BatchSize, nameof(BatchSize));
        Positive(TotalTimesteps, nameof(TotalTimesteps));
        Positive(LearningRate, nameof(LearningRate));
        Positive(RhoBar, nameof(RhoBar));
        Positive(CBar, nameof(CBar));
        Positive(PgRhoBar, nameof(PgRhoBar));
        Positive(Credit, nameof(Credit));
        if (MaxCredit < Credit) throw new ArgumentOutOfRangeException(nameof(MaxCredit), MaxCredit, $"MaxCredit ({MaxCredit}) must be at least Credit ({Credit}); set them equal for a fixed window.");
        if (!(Gamma >= 0 && Gamma <= 1)) throw new ArgumentOutOfRangeException(nameof(Gamma), Gamma, "Gamma must lie in [0, 1].");
        if (!(Lambda >= 0 && Lambda <= 1)) throw new ArgumentOutOfRangeException(nameof(Lambda), Lambda, "Lambda must lie in [0, 1].");
        if (CheckpointEvery < 0) throw new ArgumentOutOfRangeException(nameof(CheckpointEvery), CheckpointEvery, "CheckpointEvery must be >= 0 (0: only the final checkpoint).");
        if (KeepCheckpoints < 1) throw new ArgumentOutOfRangeException(nameof(KeepCheckpoints), KeepCheckpoints, "KeepCheckpoints must be >= 1.");
        if (MaxPolicyLag < 0) throw new ArgumentOutOfRangeException(nameof(MaxPolicyLag), MaxPolicyLag, "MaxPolicyLag must be >= 0 (0: no limit).");
        if (!(TargetUpdateKl >= 0) || !double.IsFinite(TargetUpdateKl)) throw new ArgumentOutOfRangeException(nameof(TargetUpdateKl), TargetUpdateKl, "TargetUpdateKl must be >= 0 (0: off).");
        Positive(ObservationClip, nameof(ObservationClip));
        if (!(MaxUpdateKl >= 0) || !double.IsFinite(MaxUpdateKl)) throw new ArgumentOutOfRangeException(nameof(MaxUpdateKl), MaxUpdateKl, "MaxUpdateKl must be >= 0 (0: off).");
        if (Impact)
        {
            Positive(TargetUpdateFrequency, nameof(TargetUpdateFrequency));
            Positive(ReplayTimes, nameof(ReplayTimes));
            Positive(ReplayBufferSize, nameof(ReplayBufferSize));
            Positive(ClipCoef, nameof(ClipCoef));
            Positive(TargetRatioClip, nameof(TargetRatioClip));
        }
    }
}
