using ClusterEnv.Common;
using ClusterEnv.Nn;
using ClusterEnv.Policies;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace ClusterEnv.Tests.Policies;

/// <summary>
/// An exported policy, loaded by ONNX Runtime (Microsoft.ML.OnnxRuntime), acts as the C# policy does on 1,000
/// observations: same most likely actions, logits / means and values within float32 rounding.
/// </summary>
public class OnnxExportTests
{
    private const int N = 1000;

    // Weights as a trained policy has them (not the near-zero actor head of a fresh one, where every logit ties).
    private static ActorCritic Policy(PolicySpec spec, int seed, bool normalize, bool valueScale)
    {
        var policy = new ActorCritic(spec, seed);
        var rng = new Rng(seed + 100);
        var p = policy.Parameters;
        for (int i = 0; i < p.Length; i++) p[i] = (float)(0.4 * rng.NextGaussian());
        if (normalize)
        {
            var mean = Enumerable.Range(0, spec.ObservationSize).Select(i => (float)(0.3 * i - 0.5)).ToArray();
            var var = Enumerable.Range(0, spec.ObservationSize).Select(i => (float)(0.5 + i)).ToArray();
            policy.Normalizer = new ObservationNormalizer(mean, var, 5f);
        }
        if (valueScale) policy.ValueScale = (3.5, 12.25);
        return policy;
    }

    private static float[] Observations(int size, int seed)
    {
        var rng = new Rng(seed);
        var obs = new float[N * size];
        for (int i = 0; i < obs.Length; i++) obs[i] = (float)rng.Uniform(-6, 6); // beyond the clip of 5 after normalising, too
        return obs;
    }

    // Within float32 rounding of a different summation order and tanh: |a − e| ≤ 1e-5 + 1e-5·|e|, reported by the worst element.
    private static void AssertClose(float[] actual, float[] expected, string what)
    {
        Assert.That(actual, Has.Length.EqualTo(expected.Length), what);
        int worst = 0;
        double worstExcess = double.NegativeInfinity;
        for (int i = 0; i < actual.Length; i++)
        {
            double excess = Math.Abs(actual[i] - expected[i]) - (1e-5 + 1e-5 * Math.Abs(expected[i]));
            if (excess > worstExcess) (worst, worstExcess) = (i, excess);
        }
        Assert.That(worstExcess, Is.LessThanOrEqualTo(0), $"{what}[{worst}]: ONNX Runtime {actual[worst]}, C# {expected[worst]}");
    }

    private static Dictionary<string, DisposableNamedOnnxValue> Run(ActorCritic policy, float[] obs)
    {
        using var session = new InferenceSession(OnnxExport.ToBytes(policy, new Dictionary<string, string> { ["env"] = "test" }));
        var input = NamedOnnxValue.CreateFromTensor("observation", new DenseTensor<float>(obs, [N, policy.Spec.ObservationSize]));
        return session.Run([input]).ToDictionary(v => v.Name, v => v);
    }

    [TestCase(false, false, Activation.Tanh)]
    [TestCase(true, true, Activation.Tanh)]
    [TestCase(true, false, Activation.ReLU)]
    public void DiscretePolicy_InOnnxRuntime_ActsAsTheCSharpPolicy(bool normalize, bool valueScale, Activation activation)
    {
        var spec = new PolicySpec(6, false, 3, [64, 64], activation);
        var policy = Policy(spec, 7, normalize, valueScale);
        var obs = Observations(6, 11);
        int[] actions = new int[N];
        float[] logProbs = new float[N], values = new float[N], logits = new float[N * 3];
        policy.Act(obs, N, new Rng(1), actions, [], logProbs, values, deterministic: true, distributionParameters: logits);

        var outputs = Run(policy, obs);
        var onnxLogits = outputs["logits"].AsTensor<float>().ToArray();
        var onnxActions = outputs["action"].AsTensor<long>().ToArray();
        var onnxValues = outputs["value"].AsTensor<float>().ToArray();
        AssertClose(onnxLogits, logits, "logits");
        AssertClose(onnxValues, values, "values");
        int decided = 0, differ = 0;
        for (int i = 0; i < N; i++)
        {
            var row = logits.AsSpan(i * 3, 3).ToArray().OrderDescending().ToArray();
            if (row[0] - row[1] < 1e-4f) continue; // a tie within float32 rounding may go either way
            decided++;
            if (onnxActions[i] != actions[i]) differ++;
        }
        Assert.That(decided, Is.GreaterThan(990));
        Assert.That(differ, Is.Zero, $"{differ} of {decided} clear-cut actions differ");
    }

    [Test]
    public void ContinuousPolicy_InOnnxRuntime_GivesTheMeanActionsValuesAndLogStd()
    {
        var spec = new PolicySpec(3, true, 2, [64, 64]);
        var policy = Policy(spec, 3, normalize: true, valueScale: true);
        policy.LogStd[0] = -0.5f;
        policy.LogStd[1] = 0.25f;
        var obs = Observations(3, 5);
        float[] actions = new float[N * 2], logProbs = new float[N], values = new float[N];
        policy.Act(obs, N, new Rng(1), [], actions, logProbs, values, deterministic: true);

        var outputs = Run(policy, obs);
        AssertClose(outputs["action"].AsTensor<float>().ToArray(), actions, "actions");
        AssertClose(outputs["action_mean"].AsTensor<float>().ToArray(), actions, "actions");
        AssertClose(outputs["value"].AsTensor<float>().ToArray(), values, "values");
        Assert.That(outputs["log_std"].AsTensor<float>().ToArray(), Is.EqualTo(new[] { -0.5f, 0.25f }));
    }

    [Test]
    public void TheModel_CarriesItsSpecAndMetadata_AndAFreeBatchDimension()
    {
        var policy = Policy(new PolicySpec(4, false, 2, [8]), 1, false, false);
        using var session = new InferenceSession(OnnxExport.ToBytes(policy, new Dictionary<string, string> { ["env"] = "CartPole-v1" }));
        var meta = session.ModelMetadata.CustomMetadataMap;
        Assert.That(meta["env"], Is.EqualTo("CartPole-v1"));
        Assert.That(PolicySpec.FromJson(meta["policy_spec"]), Is.EqualTo(policy.Spec));
        Assert.That(session.InputMetadata["observation"].Dimensions, Is.EqualTo(new[] { -1, 4 }));
        Assert.That(session.OutputMetadata.Keys, Is.EquivalentTo(new[] { "logits", "action", "value" }));
        var one = NamedOnnxValue.CreateFromTensor("observation", new DenseTensor<float>(new float[] { 0.1f, 0, -0.2f, 0.3f }, [1, 4]));
        using var r = session.Run([one]);
        Assert.That(r.Single(v => v.Name == "action").AsTensor<long>().Length, Is.EqualTo(1));
    }

    [Test]
    public void APolicyTrainedByPpo_OnCartPole_ActsTheSameInOnnxRuntime()
    {
        using var envs = ClusterEnv.Envs.Gym.MakeVec("CartPole-v1", 4, wrap: e => new ClusterEnv.Wrappers.RecordEpisodeStatistics(e));
        var result = ClusterEnv.Learners.Ppo.Ppo.Train(envs, new ClusterEnv.Learners.Ppo.PpoOptions { Seed = 3, TotalTimesteps = 8192 });
        var policy = result.Policy;
        // Observations a CartPole run visits (cart within ±2.4, pole within ±0.21 rad, speeds within ±2).
        var rng = new Rng(9);
        var obs = new float[N * 4];
        for (int i = 0; i < N; i++)
        {
            obs[4 * i] = (float)rng.Uniform(-2.4, 2.4);
            obs[4 * i + 1] = (float)rng.Uniform(-2, 2);
            obs[4 * i + 2] = (float)rng.Uniform(-0.21, 0.21);
            obs[4 * i + 3] = (float)rng.Uniform(-2, 2);
        }
        int[] actions = new int[N];
        float[] logProbs = new float[N], values = new float[N], logits = new float[N * 2];
        policy.Act(obs, N, new Rng(1), actions, [], logProbs, values, deterministic: true, distributionParameters: logits);
        var outputs = Run(policy, obs);
        AssertClose(outputs["logits"].AsTensor<float>().ToArray(), logits, "logits");
        AssertClose(outputs["value"].AsTensor<float>().ToArray(), values, "values");
        var onnxActions = outputs["action"].AsTensor<long>().ToArray();
        int ties = Enumerable.Range(0, N).Count(i => Math.Abs(logits[2 * i] - logits[2 * i + 1]) < 1e-4f);
        int differ = Enumerable.Range(0, N).Count(i => onnxActions[i] != actions[i] && Math.Abs(logits[2 * i] - logits[2 * i + 1]) >= 1e-4f);
        Assert.That(differ, Is.Zero, $"{differ} actions differ ({ties} near-ties excluded)");
        Assert.That(actions.Distinct().Count(), Is.EqualTo(2), "the trained policy uses both actions on these observations");
    }
}
