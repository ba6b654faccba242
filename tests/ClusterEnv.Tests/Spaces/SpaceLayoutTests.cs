using ClusterEnv.Cluster;
using ClusterEnv.Envs;
using ClusterEnv.Spaces;
using ClusterEnv.Tests.Cluster;
using ClusterEnv.Vector;
using ClusterEnv.Wrappers;

namespace ClusterEnv.Tests.Spaces;

public class SpaceLayoutTests
{
    private static readonly DictSpace Structured = new(new Dictionary<string, Space>
    {
        ["grid"] = new Box(0f, 9f, [2, 3]),
        ["goal"] = new Discrete(3, start: 1),
        ["parts"] = new TupleSpace(new MultiDiscrete([2, 4]), new MultiBinary(2)),
    });

    [Test]
    public void Layout_GivesEveryLeafItsPathOffsetShapeAndFlatPlace()
    {
        var layout = SpaceLayout.Of(Structured);
        Assert.That(layout.Leaves.Select(l => (l.Path, l.Offset, l.Size, l.FlatOffset, l.FlatSize)), Is.EqualTo(new[]
        {
            ("goal", 0, 1, 0, 3), ("grid", 1, 6, 3, 6), ("parts/0", 7, 2, 9, 6), ("parts/1", 9, 2, 15, 2),
        }), "keys sorted as Gymnasium's Dict; Discrete takes 1 slot encoded and n one-hot");
        Assert.That(layout["grid"].Space.Shape, Is.EqualTo(new[] { 2, 3 }));
        Assert.That((layout.EncodedSize, layout.FlatDim), Is.EqualTo((11, 17)));
        var e = Assert.Throws<KeyNotFoundException>(() => _ = layout["parts/2"])!;
        Assert.That(e.Message, Does.Contain("'parts/1'").And.Contain("'goal'"));
    }

    [Test]
    public void UnpackPackFlattenUnflatten_RoundTrip_AsGymnasiumsFlatten()
    {
        var layout = SpaceLayout.Of(Structured);
        Structured.Seed(4);
        for (int k = 0; k < 20; k++)
        {
            var value = Structured.Sample();
            var row = new float[layout.EncodedSize];
            layout.Pack(value, row);
            var back = layout.Unpack(row);
            Assert.That(Structured.Contains(back), Is.True);
            var again = new float[row.Length];
            layout.Pack(back, again);
            Assert.That(again, Is.EqualTo(row));

            var flat = new float[layout.FlatDim];
            layout.Flatten(row, flat);
            Assert.That(layout.FlatSpace.Contains(flat), Is.True);
            int goal = (int)((Dictionary<string, object>)value)["goal"];
            Assert.That(flat.AsSpan(0, 3).ToArray(), Is.EqualTo(Enumerable.Range(1, 3).Select(g => g == goal ? 1f : 0f).ToArray()), "Discrete(3, start=1) one-hot");
            Assert.That(flat.AsSpan(9, 6).ToArray().Sum(), Is.EqualTo(2f), "MultiDiscrete([2, 4]): two one-hots");
            var unflat = new float[row.Length];
            layout.Unflatten(flat, unflat);
            Assert.That(unflat, Is.EqualTo(row));
        }
        Assert.Throws<ArgumentException>(() => layout.Pack(new Dictionary<string, object> { ["goal"] = 7 }, new float[11]), "not an element");
        Assert.Throws<ArgumentException>(() => layout.Flatten(new float[11], new float[17]), "goal 0 is outside Discrete(3, start=1)");
    }

    [Test]
    public void FlattenObservation_IsGymnasiumsFlatten_OfTheStructuredObservation()
    {
        TestEnvs.Register();
        var env = new FlattenObservation(Gym.Make(TestEnvs.Structured));
        Assert.That(env.ObservationSpace, Is.TypeOf<Box>());
        Assert.That(env.ObservationSpace.EncodedSize, Is.EqualTo(17));
        var obs = new float[17];
        env.Reset(obs, seed: 3);
        env.Step(2, obs);
        var row = new float[11];
        env.Layout.Unflatten(obs, row);
        var value = (Dictionary<string, object>)env.Layout.Unpack(row);
        Assert.That(((object[])value["parts"])[0], Is.EqualTo(new[] { 1, 2 }), "t % 2 = 1, the action 2");
        Assert.That((float[])value["grid"], Is.EqualTo(new[] { 1f, 2f, 3f, 4f, 5f, 6f }));
    }

    [Test]
    public void StructuredObservations_AreTheSame_OnLocalAndClusterVectorEnvs()
    {
        TestEnvs.Register();
        using var local = Gym.MakeVec(TestEnvs.Structured, 4);
        var (cluster, _) = TestCluster.InProcess(TestEnvs.Structured, [2, 2]);
        using (cluster)
        {
            Assert.That(cluster.SingleObservationSpace, Is.EqualTo(local.SingleObservationSpace), "the Dict (with its Tuple) crosses the wire");
            var layout = SpaceLayout.Of(cluster.SingleObservationSpace);
            Assert.That(cluster.Reset(seed: 9).Observations.ToArray(), Is.EqualTo(local.Reset(seed: 9).Observations.ToArray()));
            int[] actions = [0, 1, 2, 3];
            var a = cluster.Step(actions).Observations.ToArray();
            var b = local.Step(actions).Observations.ToArray();
            Assert.That(a, Is.EqualTo(b));
            for (int i = 0; i < 4; i++)
            {
                var value = (Dictionary<string, object>)layout.Unpack(layout.Row(a, i));
                Assert.That(cluster.SingleObservationSpace.Contains(value), Is.True);
                Assert.That(((int[])((object[])value["parts"])[0])[1], Is.EqualTo(actions[i]), $"sub-env {i}'s row");
                Assert.That(layout.Slice(layout.Row(a, i), "grid").ToArray(), Is.EqualTo(new[] { 1f, 2f, 3f, 4f, 5f, 6f }));
            }
        }
    }
}
