using System.Globalization;
using System.Text.Json;
using ClusterEnv.Cluster;
using ClusterEnv.Envs;
using ClusterEnv.Spaces;
using ClusterEnv.Vector;

namespace ClusterEnv.Tests.Reference;

/// <summary>
/// Against real Gymnasium 1.3.0 (Fixtures/gymnasium_spaces.py ran it): Dict and Tuple samples after <c>seed(s)</c>,
/// float64 Box samples, and resets with seeds beyond 2³¹ − 1, on an env, a local vector env and a cluster.
/// </summary>
public class GymnasiumSpacesTests
{
    private static readonly JsonElement Root = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestContext.CurrentContext.TestDirectory, "Reference", "Fixtures", "gymnasium_spaces.json"))).RootElement;

    private static Dictionary<string, Space> Spaces() => new()
    {
        ["dict"] = new DictSpace(new Dictionary<string, Space> { ["b"] = new Discrete(5), ["a"] = new Box(-1f, 1f, [2]), ["c"] = new MultiDiscrete([3, 4]) }),
        ["tuple"] = new TupleSpace(new Discrete(3, start: -1), new Box(-2.0, 2.0, [3], DType.Float64), new MultiBinary(4),
            new DictSpace(new Dictionary<string, Space> { ["y"] = new Box(0f, 1f, [1]), ["x"] = new Discrete(2) })),
        ["box64"] = new Box(-1.0, 1.0, [3], DType.Float64),
    };

    // The fixture's encoding: float32 as uint32 bits, float64 as uint64 bits (strings), integers as integers.
    private static string Encode(Space space, object value) => space switch
    {
        DictSpace d => "{" + string.Join(",", d.Items.Select(p => $"{p.Key}:{Encode(p.Value, ((IReadOnlyDictionary<string, object>)value)[p.Key])}")) + "}",
        TupleSpace t => "[" + string.Join(",", t.Spaces.Select((s, i) => Encode(s, ((object?[])value)[i]!))) + "]",
        Box { DType: DType.Float32 } => "[" + string.Join(",", ((float[])value).Select(BitConverter.SingleToUInt32Bits)) + "]",
        Box { DType: DType.Float64 } => "[" + string.Join(",", ((double[])value).Select(BitConverter.DoubleToUInt64Bits)) + "]",
        Discrete => $"[{(int)value}]",
        _ => "[" + string.Join(",", (int[])value) + "]",
    };

    private static string Encode(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "{" + string.Join(",", e.EnumerateObject().Select(p => $"{p.Name}:{Encode(p.Value)}")) + "}",
        JsonValueKind.Array => "[" + string.Join(",", e.EnumerateArray().Select(Encode)) + "]",
        JsonValueKind.String => e.GetString()!,
        _ => e.GetRawText(),
    };

    [Test]
    public void FixtureCameFromGymnasium130() => Assert.That(Root.GetProperty("gymnasium").GetString(), Is.EqualTo("1.3.0"));

    [Test]
    public void CompositeAndFloat64Samples_AfterSeed_EqualGymnasiums()
    {
        int compared = 0;
        foreach (var entry in Root.GetProperty("spaces").EnumerateArray())
        {
            long seed = entry.GetProperty("seed").GetInt64();
            foreach (var (name, space) in Spaces())
            {
                space.Seed(seed);
                var expected = entry.GetProperty(name).EnumerateArray().Select(Encode).ToArray();
                var actual = expected.Select(_ => Encode(space, space.Sample())).ToArray();
                Assert.That(actual, Is.EqualTo(expected), $"{name} = {space}, seed {seed}");
                compared++;
            }
        }
        Assert.That(compared, Is.EqualTo(6 * 3), "6 seeds (5 small and 2^40 + 3) × 3 spaces");
    }

    [Test]
    public void ResetWithASeedBeyondInt32_StartsWhereGymnasiumStarts_InAnEnvAVectorEnvAndACluster()
    {
        using var env = Gym.Make("CartPole-v1");
        using var local = Gym.MakeVec("CartPole-v1", 3);
        using var cluster = new ClusterVecEnv(new ClusterOptions { EnvId = "CartPole-v1", NumEnvs = 3, NumWorkers = 2 });
        foreach (var r in Root.GetProperty("resets").EnumerateArray())
        {
            long seed = long.Parse(r.GetProperty("seed").GetString()!, CultureInfo.InvariantCulture);
            var single = r.GetProperty("cartpole").EnumerateArray().Select(v => v.GetUInt32()).ToArray();
            var vec = r.GetProperty("cartpole_vec3").EnumerateArray().Select(v => v.GetUInt32()).ToArray();
            Assert.That(Bits(env.Reset(seed: seed).Observation), Is.EqualTo(single), $"CartPole reset(seed={seed})");
            Assert.That(Bits(local.Reset(seed: seed).Observations), Is.EqualTo(vec), $"SyncVectorEnv reset(seed={seed})");
            Assert.That(Bits(cluster.Reset(seed: seed).Observations), Is.EqualTo(vec), $"ClusterVecEnv reset(seed={seed})");
        }
    }

    [Test]
    public void NegativeSeeds_AreRefusedAsGymnasiumRefusesThem()
    {
        using var env = Gym.Make("CartPole-v1");
        using var local = Gym.MakeVec("CartPole-v1", 2);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => env.Reset(seed: -1));
        Assert.That(e!.Message, Does.Contain("Seed -1 is negative"));
        Assert.Throws<ArgumentOutOfRangeException>(() => local.Reset(seed: -5));
        Assert.Throws<ArgumentOutOfRangeException>(() => local.Reset(new long?[] { 1, -2 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => local.Reset(seed: long.MaxValue), "seed + i would overflow");
    }

    [Test]
    public void Float64Box_KeepsItsDtypeAndBounds_OnTheWire()
    {
        var box = new Box([-1e300, 0.1], [1e300, 0.30000000000000004], [2], DType.Float64);
        var back = (Box)ClusterEnv.Transport.SpaceCodec.FromProto(ClusterEnv.Transport.SpaceCodec.ToProto(box));
        Assert.That(back.DType, Is.EqualTo(DType.Float64));
        Assert.That(back.Low64.ToArray(), Is.EqualTo(box.Low64.ToArray()));
        Assert.That(back.High64.ToArray(), Is.EqualTo(box.High64.ToArray()));
        Assert.That(back, Is.EqualTo(box));
        Assert.That(box.ToString(), Is.EqualTo("Box([-1E+300, 0.1], [1E+300, 0.30000000000000004], (2,), float64)"));
        Assert.That(box.Contains(new[] { 0.0, 0.2 }), Is.True);
        Assert.That(box.Contains(new[] { 0.0, 0.05 }), Is.False);
        // A float32 box built from double bounds keeps them rounded to float32, as Gymnasium casts bounds to the dtype.
        var f32 = new Box(0.1, 0.2, [1]);
        Assert.That(f32.DType, Is.EqualTo(DType.Float32));
        Assert.That(f32.Low64[0], Is.EqualTo((double)0.1f));
    }

    private static uint[] Bits(float[] values) => values.Select(BitConverter.SingleToUInt32Bits).ToArray();
}
