using System.Globalization;
using System.Text.Json;
using ClusterEnv.Common;
using ClusterEnv.Envs;
using ClusterEnv.Spaces;

namespace ClusterEnv.Tests.Reference;

/// <summary>
/// NumPy-compatible seeding: fixtures written by Debian's NumPy (Fixtures/numpy_seeding.py, which follows Gymnasium's
/// reset and sample code) against <see cref="Rng"/>, the bundled envs' <c>Reset(seed)</c> and the spaces' samples, bit for bit.
/// </summary>
public class NumpySeedingTests
{
    private static readonly JsonElement Root = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestContext.CurrentContext.TestDirectory, "Reference", "Fixtures", "numpy_seeding.json"))).RootElement;

    private static IEnumerable<JsonElement> Items(string name) => Root.GetProperty(name).EnumerateArray();

    private static long[] Longs(JsonElement e) => e.EnumerateArray().Select(v => v.GetInt64()).ToArray();

    private static uint[] Bits(ReadOnlySpan<float> values) => values.ToArray().Select(BitConverter.SingleToUInt32Bits).ToArray();

    [Test]
    public void RawStreams_EqualNumPys_Pcg64_SeedSequence()
    {
        foreach (var s in Items("streams"))
        {
            long seed = s.GetProperty("seed").GetInt64();
            var rng = new Rng(seed);
            var u64 = s.GetProperty("uint64").EnumerateArray().Select(v => ulong.Parse(v.GetString()!, CultureInfo.InvariantCulture)).ToArray();
            Assert.That(Enumerable.Range(0, u64.Length).Select(_ => rng.NextUInt64()).ToArray(), Is.EqualTo(u64), $"seed {seed}: next_uint64");
            rng = new Rng(seed);
            var rnd = s.GetProperty("random").EnumerateArray().Select(v => double.Parse(v.GetString()!, CultureInfo.InvariantCulture)).ToArray();
            Assert.That(Enumerable.Range(0, rnd.Length).Select(_ => rng.NextDouble()).ToArray(), Is.EqualTo(rnd), $"seed {seed}: random()");
            rng = new Rng(seed);
            var ints = new List<long>();
            for (int i = 0; i < 6; i++) ints.Add(rng.NextInt(10));
            for (int i = 0; i < 4; i++) ints.Add(rng.NextLong(-5, 2));
            for (int i = 0; i < 2; i++) ints.Add(rng.NextLong(0, (1L << 40) - 1));
            Assert.That(ints, Is.EqualTo(Longs(s.GetProperty("integers"))), $"seed {seed}: integers (32-bit Lemire with buffered halves, then 64-bit)");
            rng = new Rng(seed);
            int[] a = new int[9], b = new int[5];
            rng.NextBytes(0, 1, a);
            rng.NextBytes(0, 6, b);
            Assert.That(a.Concat(b).Select(v => (long)v), Is.EqualTo(Longs(s.GetProperty("int8"))), $"seed {seed}: integers(dtype=int8)");
        }
    }

    [TestCase("CartPole-v1")]
    [TestCase("Acrobot-v1")]
    [TestCase("Pendulum-v1")]
    [TestCase("MountainCar-v0")]
    [TestCase("MountainCarContinuous-v0")]
    public void ResetWithASeed_StartsWhereGymnasiumStarts(string id)
    {
        var env = Gym.Make(id);
        var obs = new float[env.ObservationSpace.EncodedSize];
        int checkedSeeds = 0;
        foreach (var e in Root.GetProperty("envs").GetProperty(id).EnumerateArray())
        {
            long seed = e.GetProperty("seed").GetInt64();
            env.Reset(obs, seed: seed);
            var expected = e.GetProperty("obs").EnumerateArray().Select(v => v.GetUInt32()).ToArray();
            Assert.That(Bits(obs), Is.EqualTo(expected), $"{id} reset(seed={seed}): {string.Join(", ", obs)}");
            checkedSeeds++;
        }
        Assert.That(checkedSeeds, Is.EqualTo(7));
    }

    [Test]
    public void SpaceSamples_AfterSeed_EqualGymnasiums()
    {
        foreach (var e in Items("spaces"))
        {
            int seed = e.GetProperty("seed").GetInt32();
            var d = new Discrete(5);
            d.Seed(seed);
            Assert.That(Enumerable.Range(0, 12).Select(_ => (long)d.SampleValue()), Is.EqualTo(Longs(e.GetProperty("discrete5"))), $"Discrete(5), seed {seed}");
            var ds = new Discrete(3, start: -1);
            ds.Seed(seed);
            Assert.That(Enumerable.Range(0, 12).Select(_ => (long)ds.SampleValue()), Is.EqualTo(Longs(e.GetProperty("discrete3_start_minus1"))), $"Discrete(3, start=-1), seed {seed}");

            var box = new Box(-1f, 1f, [3]);
            box.Seed(seed);
            var v = new float[3];
            foreach (var expected in e.GetProperty("box3").EnumerateArray())
            {
                box.Sample(v);
                Assert.That(Bits(v), Is.EqualTo(expected.EnumerateArray().Select(x => x.GetUInt32()).ToArray()), $"Box(-1, 1, (3,)), seed {seed}");
            }
            var ibox = new Box([-2f, 0f], [2f, 10f], DType.Int64);
            ibox.Seed(seed);
            var iv = new float[2];
            foreach (var expected in e.GetProperty("box_int").EnumerateArray())
            {
                ibox.Sample(iv);
                Assert.That(iv.Select(x => (long)x), Is.EqualTo(Longs(expected)), $"Box(int64), seed {seed}");
            }
            var md = new MultiDiscrete([3, 5, 2]);
            md.Seed(seed);
            var mv = new int[3];
            foreach (var expected in e.GetProperty("multidiscrete").EnumerateArray())
            {
                md.Sample(mv);
                Assert.That(mv.Select(x => (long)x), Is.EqualTo(Longs(expected)), $"MultiDiscrete([3, 5, 2]), seed {seed}");
            }
            var mb = new MultiBinary(6);
            mb.Seed(seed);
            var bv = new int[6];
            foreach (var expected in e.GetProperty("multibinary6").EnumerateArray())
            {
                mb.Sample(bv);
                Assert.That(bv.Select(x => (long)x), Is.EqualTo(Longs(expected)), $"MultiBinary(6), seed {seed}");
            }
        }
    }

    [Test]
    public void RngState_RoundTrips_IncludingTheBufferedHalfWord()
    {
        var a = new Rng(99);
        a.NextUInt32(); // leaves the high half buffered
        var saved = a.State;
        Assert.That(saved.HasUInt32, Is.True);
        var b = new Rng(1) { State = saved };
        Assert.That(Enumerable.Range(0, 5).Select(_ => b.NextUInt32()), Is.EqualTo(Enumerable.Range(0, 5).Select(_ => a.NextUInt32())));
        Assert.Throws<ArgumentException>(() => b.State = saved with { IncrementLow = 2 });
    }
}
