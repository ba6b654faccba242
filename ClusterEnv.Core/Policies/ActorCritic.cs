using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using ClusterEnv.Common;
using ClusterEnv.Nn;

namespace ClusterEnv.Policies;

/// <summary>
/// CleanRL's agent: separate actor and critic MLPs (orthogonal init, gain √2 in hidden layers, 0.01 on the actor head,
/// 1 on the critic head, zero biases) and, for continuous actions, a state-independent log-std (initialised to 0).
/// All parameters are one flat buffer (<see cref="Parameters"/>), in this order: actor, critic, log-std. With an image
/// encoder (<see cref="PolicySpec.Encoder"/>) the actor and critic are heads on a shared convolutional torso whose
/// parameters come first ("encoder.*"); the torso divides pixels by 255.
/// </summary>
/// <remarks>
/// Learners go through <see cref="Forward"/> / <see cref="Backward(ReadOnlySpan{float}, ReadOnlySpan{float})"/> (both heads, the torso once) or
/// <see cref="ForwardActor"/> / <see cref="ForwardCritic"/>; these take the network's input (observations after
/// <see cref="Normalizer"/>, as <see cref="Prepare"/> gives them). <see cref="Actor"/> and <see cref="Critic"/> are the
/// heads alone: on an image policy their input is the torso's features.
/// </remarks>
public sealed class ActorCritic
{
    private readonly int _logStd = -1;
    private readonly ConvEncoder? _encoder;
    private float[] _values1 = [], _pixels = [], _dFeatures = [], _dFeaturesCritic = [];

    /// <summary>Builds the networks for <paramref name="spec"/> with CleanRL's initialisation from <paramref name="seed"/>.</summary>
    public ActorCritic(PolicySpec spec, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(spec);
        Spec = spec;
        Store = new ParameterStore();
        int input = spec.ObservationSize;
        if (spec.Encoder is { } e)
        {
            if (e.Channels * e.Height * e.Width != spec.ObservationSize)
                throw new ArgumentException($"The encoder reads {e.Channels}×{e.Height}×{e.Width} images, {e.Channels * e.Height * e.Width} values, but observations have {spec.ObservationSize}.", nameof(spec));
            _encoder = e.Build(Store);
            input = _encoder.Features;
        }
        Actor = new Mlp(Store, "actor", [input, .. spec.Hidden, spec.ActionSize], spec.Activation);
        Critic = new Mlp(Store, "critic", [input, .. spec.Hidden, 1], spec.Activation);
        if (spec.Continuous) _logStd = Store.Declare("actor_logstd", spec.ActionSize);
        Store.Build();
        var rng = new Rng(seed);
        _encoder?.Initialize(rng);
        Actor.Initialize(rng, Math.Sqrt(2), 0.01);
        Critic.Initialize(rng, Math.Sqrt(2), 1.0);
    }

    /// <summary>The architecture.</summary>
    public PolicySpec Spec { get; }

    /// <summary>The parameters and gradients.</summary>
    public ParameterStore Store { get; }

    /// <summary>The policy network: observations → logits (discrete) or action means (continuous).</summary>
    public Mlp Actor { get; }

    /// <summary>The value network: observations → V(s).</summary>
    public Mlp Critic { get; }

    /// <summary>The shared image torso (null for vector observations).</summary>
    public ConvEncoder? Encoder => _encoder;

    // The torso's features for network input x (pixels scaled by 1/255 first), or x itself without a torso.
    private ReadOnlySpan<float> Features(ReadOnlySpan<float> x, int batch)
    {
        if (_encoder is null) return x;
        int n = batch * Spec.ObservationSize;
        if (x.Length < n) throw new ArgumentException($"{batch} observations of {Spec.ObservationSize} values need {n}; got {x.Length}.", nameof(x));
        if (_pixels.Length < n) _pixels = new float[n];
        System.Numerics.Tensors.TensorPrimitives.Multiply(x[..n], 1f / 255f, _pixels.AsSpan(0, n));
        return _encoder.Forward(_pixels.AsSpan(0, n), batch);
    }

    /// <summary>The actor's output (logits or action means, batch × ActionSize) for network input <paramref name="x"/>; a buffer of the actor's until its next call.</summary>
    public ReadOnlySpan<float> ForwardActor(ReadOnlySpan<float> x, int batch) => Actor.Forward(Features(x, batch), batch);

    /// <summary>The critic's output (batch values, scaled when <see cref="ValueScale"/> is set) for network input <paramref name="x"/>.</summary>
    public ReadOnlySpan<float> ForwardCritic(ReadOnlySpan<float> x, int batch) => Critic.Forward(Features(x, batch), batch);

    /// <summary>Both heads on one pass of the torso: what <see cref="Backward(ReadOnlySpan{float}, ReadOnlySpan{float})"/> differentiates.</summary>
    public void Forward(ReadOnlySpan<float> x, int batch, out ReadOnlySpan<float> head, out ReadOnlySpan<float> values)
    {
        var f = Features(x, batch);
        head = Actor.Forward(f, batch);
        values = Critic.Forward(f, batch);
    }

    /// <summary>Accumulates the gradients of the last <see cref="Forward"/> given the losses' gradients by the heads' outputs; the torso's backward runs once on their sum.</summary>
    public void Backward(ReadOnlySpan<float> gradHead, ReadOnlySpan<float> gradValues) => Backward(gradHead, gradValues, null);

    /// <summary>
    /// <see cref="Backward(ReadOnlySpan{float}, ReadOnlySpan{float})"/>, telling <paramref name="ready"/> each range of
    /// gradients as soon as it is final: the log-std (a continuous policy's, accumulated by the loss before this call),
    /// the actor's layers from the last, the critic's, then the torso's. Together they cover every parameter once.
    /// </summary>
    public void Backward(ReadOnlySpan<float> gradHead, ReadOnlySpan<float> gradValues, IGradientReady? ready)
    {
        if (ready is not null && _logStd >= 0) ready.Ready(Store[_logStd].Offset, Store[_logStd].Length);
        if (_encoder is null)
        {
            Actor.Backward(gradHead, default, ready);
            Critic.Backward(gradValues, default, ready);
            return;
        }
        int n = gradValues.Length * _encoder.Features;
        if (_dFeatures.Length < n) (_dFeatures, _dFeaturesCritic) = (new float[n], new float[n]);
        Actor.Backward(gradHead, _dFeatures.AsSpan(0, n), ready);
        Critic.Backward(gradValues, _dFeaturesCritic.AsSpan(0, n), ready);
        System.Numerics.Tensors.TensorPrimitives.Add(_dFeatures.AsSpan(0, n), _dFeaturesCritic.AsSpan(0, n), _dFeatures.AsSpan(0, n));
        _encoder.Backward(_dFeatures.AsSpan(0, n), default, ready);
    }

    /// <summary>Accumulates the gradients of the last <see cref="ForwardActor"/> (a policy-gradient loss with no critic).</summary>
    public void BackwardActor(ReadOnlySpan<float> gradHead)
    {
        if (_encoder is null)
        {
            Actor.Backward(gradHead);
            return;
        }
        int n = gradHead.Length / Spec.ActionSize * _encoder.Features;
        if (_dFeatures.Length < n) (_dFeatures, _dFeaturesCritic) = (new float[n], new float[n]);
        Actor.Backward(gradHead, _dFeatures.AsSpan(0, n));
        _encoder.Backward(_dFeatures.AsSpan(0, n));
    }

    /// <summary>All parameters, flat (what is shipped to workers).</summary>
    public float[] Parameters => Store.Values;

    /// <summary>
    /// The observation statistics this policy acts with (null: raw observations). <see cref="Act"/> and
    /// <see cref="Value(ReadOnlySpan{float}, int, Span{float})"/> take raw observations and apply them;
    /// <see cref="Actor"/> and <see cref="Critic"/> called directly take normalised ones.
    /// </summary>
    public ObservationNormalizer? Normalizer
    {
        get => _normalizer;
        set => _normalizer = value is not null && _encoder is not null
            ? throw new InvalidOperationException("Image policies scale pixels by 1/255 and take no observation normaliser; turn observation normalisation off.")
            : value;
    }

    private ObservationNormalizer? _normalizer;

    /// <summary>
    /// The scale of the critic's output (a learner that normalises returns): <see cref="Value(ReadOnlySpan{float}, int, Span{float})"/>
    /// and <see cref="Act"/> report <c>Mean + Std · critic(x)</c>; <see cref="Critic"/> called directly gives the scaled
    /// output. Null: the critic predicts returns as they are.
    /// </summary>
    public (double Mean, double Std)? ValueScale { get; set; }

    private void Unscale(Span<float> values)
    {
        if (ValueScale is not var (mean, std)) return;
        for (int i = 0; i < values.Length; i++) values[i] = (float)(mean + std * values[i]);
    }

    private float[] _normalized = [];

    // Raw observations as the networks see them: normalised into a reusable buffer, or as they are.
    internal ReadOnlySpan<float> Prepare(ReadOnlySpan<float> observations, int batch)
    {
        if (Normalizer is not { } n) return observations;
        int size = batch * Spec.ObservationSize;
        if (_normalized.Length < size) _normalized = new float[size];
        n.Normalize(observations[..size], _normalized);
        return _normalized.AsSpan(0, size);
    }

    /// <summary>The log standard deviations (continuous policies; empty otherwise).</summary>
    public Span<float> LogStd => _logStd < 0 ? Span<float>.Empty : Store[_logStd].Values;

    /// <summary>Gradient of the log standard deviations.</summary>
    public Span<float> LogStdGrad => _logStd < 0 ? Span<float>.Empty : Store[_logStd].Grad;

    /// <summary>
    /// Samples actions for a batch of observations (batch × ObservationSize) and writes their log-probabilities and
    /// the critic's values. Discrete: <paramref name="discreteActions"/> (batch); continuous: <paramref name="continuousActions"/>
    /// (batch × ActionSize), unclipped. When <paramref name="distributionParameters"/> is given it receives the
    /// logits or means (batch × ActionSize). No allocation once warm.
    /// </summary>
    public void Act(ReadOnlySpan<float> observations, int batch, Rng rng, Span<int> discreteActions, Span<float> continuousActions,
        Span<float> logProbs, Span<float> values, bool deterministic = false, Span<float> distributionParameters = default)
    {
        observations = Prepare(observations, batch);
        Forward(observations, batch, out var head, out var criticOut);
        int k = Spec.ActionSize;
        if (!distributionParameters.IsEmpty) head[..(batch * k)].CopyTo(distributionParameters);
        for (int i = 0; i < batch; i++)
        {
            var row = head.Slice(i * k, k);
            if (!Spec.Continuous)
            {
                if (deterministic)
                {
                    discreteActions[i] = Categorical.Mode(row);
                    logProbs[i] = Categorical.LogProb(row, discreteActions[i]);
                }
                else discreteActions[i] = Categorical.Sample(row, rng, out logProbs[i]);
            }
            else
            {
                var act = continuousActions.Slice(i * k, k);
                if (deterministic)
                {
                    row.CopyTo(act);
                    logProbs[i] = DiagGaussian.LogProb(row, LogStd, act);
                }
                else logProbs[i] = DiagGaussian.Sample(row, LogStd, rng, act);
            }
        }
        criticOut[..batch].CopyTo(values);
        Unscale(values[..batch]);
    }

    /// <summary>The critic's values for a batch of raw observations (normalised with <see cref="Normalizer"/> when set).</summary>
    public void Value(ReadOnlySpan<float> observations, int batch, Span<float> values)
    {
        ForwardCritic(Prepare(observations, batch), batch)[..batch].CopyTo(values);
        Unscale(values[..batch]);
    }

    /// <summary>The value of one observation.</summary>
    public float Value(ReadOnlySpan<float> observation)
    {
        if (_values1.Length == 0) _values1 = new float[1];
        Value(observation, 1, _values1);
        return _values1[0];
    }

    /// <summary>Copies flat parameters in (a snapshot from a learner).</summary>
    /// <exception cref="ArgumentException">The count is wrong, or a parameter is NaN or infinite (named by index); the policy is then unchanged.</exception>
    public void LoadParameters(ReadOnlySpan<float> parameters)
    {
        if (parameters.Length != Store.Count)
            throw new ArgumentException($"Got {parameters.Length} parameters; a policy of spec {Spec.ToJson()} has {Store.Count}.", nameof(parameters));
        int bad = IndexOfNonFinite(parameters);
        if (bad >= 0)
            throw new ArgumentException($"Parameter {bad} of {parameters.Length} is {parameters[bad]}; a policy with NaN or infinite weights acts with NaN log-probs.", nameof(parameters));
        parameters.CopyTo(Store.Values);
    }

    /// <summary>The index of the first NaN or infinite value, or -1 when all are finite.</summary>
    public static int IndexOfNonFinite(ReadOnlySpan<float> values)
    {
        // x - x is 0 for every finite x and NaN for NaN and ±∞: one vector pass finds whether any is bad.
        var acc = System.Numerics.Vector<float>.Zero;
        int i = 0, width = System.Numerics.Vector<float>.Count;
        for (; i <= values.Length - width; i += width)
        {
            var v = new System.Numerics.Vector<float>(values.Slice(i, width));
            acc += v - v;
        }
        bool clean = System.Numerics.Vector.EqualsAll(acc, System.Numerics.Vector<float>.Zero);
        for (int j = i; j < values.Length; j++) clean &= float.IsFinite(values[j]);
        if (clean) return -1;
        for (int j = 0; j < values.Length; j++)
            if (!float.IsFinite(values[j])) return j;
        return -1;
    }

    // ---------------- checkpoints ----------------

    /// <summary>Magic bytes at the start of a checkpoint file.</summary>
    public const string CheckpointMagic = "CEPOLICY";

    /// <summary>The checkpoint format version this code writes.</summary>
    public const int CheckpointVersion = 1;

    /// <summary>
    /// Writes a checkpoint. Format (version 1, little-endian): 8 bytes "CEPOLICY"; int32 version; int32 length of the
    /// UTF-8 JSON header, then the header (<c>{"spec": PolicySpec, "metadata": {...}}</c>); int32 parameter count, then
    /// that many float32; 32 bytes SHA-256 of everything before it.
    /// </summary>
    public void Save(string path, IReadOnlyDictionary<string, string>? metadata = null)
    {
        // The statistics the policy acts and predicts with travel with it (metadata keys obs_* and value_*).
        var all = new Dictionary<string, string>(metadata ?? new Dictionary<string, string>());
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        if (Normalizer is { } n)
        {
            all["obs_mean"] = string.Join(",", n.Mean.Select(v => v.ToString("R", inv)));
            all["obs_var"] = string.Join(",", n.Var.Select(v => v.ToString("R", inv)));
            all["obs_clip"] = n.Clip.ToString("R", inv);
        }
        if (ValueScale is var (vm, vs))
        {
            all["value_mean"] = vm.ToString("R", inv);
            all["value_std"] = vs.ToString("R", inv);
        }
        metadata = all;
        var header = Encoding.UTF8.GetBytes($"{{\"spec\":{Spec.ToJson()},\"metadata\":{System.Text.Json.JsonSerializer.Serialize(metadata ?? new Dictionary<string, string>())}}}");
        using var ms = new MemoryStream();
        ms.Write(Encoding.ASCII.GetBytes(CheckpointMagic));
        WriteInt(ms, CheckpointVersion);
        WriteInt(ms, header.Length);
        ms.Write(header);
        WriteInt(ms, Store.Count);
        ms.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(Store.Values.AsSpan()));
        ms.Write(SHA256.HashData(ms.ToArray()));
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        File.WriteAllBytes(path, ms.ToArray());
    }

    /// <summary>Reads a checkpoint written by <see cref="Save"/>; throws <see cref="InvalidDataException"/> naming what is wrong.</summary>
    public static ActorCritic Load(string path, out IReadOnlyDictionary<string, string> metadata)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 8 + 4 + 4 + 4 + 32 || Encoding.ASCII.GetString(bytes, 0, 8) != CheckpointMagic)
            throw new InvalidDataException($"'{path}' is not a ClusterEnv policy checkpoint (no '{CheckpointMagic}' header).");
        if (!SHA256.HashData(bytes.AsSpan(0, bytes.Length - 32)).AsSpan().SequenceEqual(bytes.AsSpan(bytes.Length - 32)))
            throw new InvalidDataException($"Checkpoint '{path}' is corrupt (checksum mismatch); it was truncated or modified.");
        int version = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(8));
        if (version != CheckpointVersion)
            throw new InvalidDataException($"Checkpoint '{path}' has format version {version}; this build reads version {CheckpointVersion}.");
        int headerLength = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(12));
        using var doc = System.Text.Json.JsonDocument.Parse(bytes.AsMemory(16, headerLength));
        var spec = PolicySpec.FromJson(doc.RootElement.GetProperty("spec").GetRawText());
        metadata = doc.RootElement.GetProperty("metadata").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? "");
        int count = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(16 + headerLength));
        var policy = new ActorCritic(spec);
        policy.LoadParameters(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes.AsSpan(20 + headerLength, count * 4)));
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        if (metadata.TryGetValue("obs_mean", out var mean) && metadata.TryGetValue("obs_var", out var var) && metadata.TryGetValue("obs_clip", out var clip))
        {
            static float[] Floats(string text) => text.Length == 0 ? [] : text.Split(',').Select(v => float.TryParse(v, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var f) ? f : float.NaN).ToArray();
            float[] m = Floats(mean), v = Floats(var);
            if (m.Length != spec.ObservationSize || v.Length != m.Length || m.Any(x => !float.IsFinite(x)) || v.Any(x => !float.IsFinite(x) || x < 0)
                || !float.TryParse(clip, System.Globalization.NumberStyles.Float, inv, out var c) || !(c > 0) || !float.IsFinite(c))
                throw new InvalidDataException($"Checkpoint '{path}' holds observation statistics that are not finite, negative or of the wrong size.");
            policy.Normalizer = new ObservationNormalizer(m, v, c);
        }
        if (metadata.TryGetValue("value_mean", out var vmText) && metadata.TryGetValue("value_std", out var vsText))
        {
            if (!double.TryParse(vmText, System.Globalization.NumberStyles.Float, inv, out var vm) || !double.IsFinite(vm)
                || !double.TryParse(vsText, System.Globalization.NumberStyles.Float, inv, out var vsd) || !(vsd > 0) || !double.IsFinite(vsd))
                throw new InvalidDataException($"Checkpoint '{path}' holds a value scale ({vmText}, {vsText}) that is not a finite mean and a positive standard deviation.");
            policy.ValueScale = (vm, vsd);
        }
        return policy;
    }

    private static void WriteInt(Stream s, int v)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(b, v);
        s.Write(b);
    }
}
