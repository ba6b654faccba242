using ClusterEnv.Spaces;

namespace ClusterEnv.Tests.Spaces;

public class SpaceTests
{
    [Test]
    public void Box_InvalidConstruction_ThrowsNamingTheValue()
    {
        Assert.That(Assert.Throws<ArgumentException>(() => new Box([0f, 2f], [1f, 1f]))!.Message, Does.Contain("low[1]=2").And.Contain("high[1]=1"));
        Assert.That(Assert.Throws<ArgumentException>(() => new Box([float.NaN], [1f]))!.Message, Does.Contain("NaN"));
        Assert.That(Assert.Throws<ArgumentException>(() => new Box([0f], [1f, 2f]))!.Message, Does.Contain("one bound per element"));
        Assert.Throws<ArgumentException>(() => new Box(0f, 1f, [2, 0]));
        Assert.That(Assert.Throws<ArgumentException>(() => new Box(0.5f, 3f, [2], DType.Int64))!.Message, Does.Contain("non-integer"));
    }

    [TestCase(0)]
    [TestCase(-3)]
    public void Discrete_NonPositiveN_Throws(int n)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new Discrete(n));
        Assert.That(ex!.Message, Does.Contain($"n={n}"));
    }

    [Test]
    public void MultiDiscrete_And_MultiBinary_InvalidConstruction_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new MultiDiscrete([3, 0]));
        Assert.Throws<ArgumentException>(() => new MultiDiscrete([3, 2], [0]));
        Assert.Throws<ArgumentException>(() => new MultiDiscrete([]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new MultiBinary(0));
    }

    [Test]
    public void Box_Sample_IsSeededAndContained_ForEveryBoundKind()
    {
        var box = new Box([-1f, float.NegativeInfinity, 0f, float.NegativeInfinity], [1f, float.PositiveInfinity, float.PositiveInfinity, 5f]);
        box.Seed(42);
        var a = Enumerable.Range(0, 200).Select(_ => (float[])box.Sample()).ToArray();
        box.Seed(42);
        var b = Enumerable.Range(0, 200).Select(_ => (float[])box.Sample()).ToArray();
        Assert.That(b, Is.EqualTo(a));
        Assert.That(a.All(x => box.Contains(x)), "every sample is in the box");
        Assert.That(a.Select(x => x[1]).Any(x => x < 0) && a.Select(x => x[1]).Any(x => x > 0), "unbounded dims draw both signs");
        Assert.That(a.Select(x => x[0]).Max() - a.Select(x => x[0]).Min(), Is.GreaterThan(1.5), "bounded dims spread over the range");
    }

    [Test]
    public void IntegerBox_SamplesWholeNumbersWithinBounds()
    {
        var box = new Box(-2f, 3f, [50], DType.Int64);
        box.Seed(1);
        var s = (float[])box.Sample();
        Assert.That(s, Has.All.InRange(-2f, 3f));
        Assert.That(s.All(x => x == MathF.Floor(x)));
        Assert.That(s.Distinct().Count(), Is.EqualTo(6), "all six values appear in 50 draws");
        Assert.That(box.Contains(new[] { 0.5f }.Concat(new float[49]).ToArray()), Is.False);
    }

    [Test]
    public void Box_Contains_ChecksShapeBoundsAndNaN()
    {
        var box = new Box(-1f, 1f, [2]);
        Assert.That(box.Contains(new[] { 0f, 1f }), Is.True);
        Assert.That(box.Contains(new[] { 0f, 1.01f }), Is.False);
        Assert.That(box.Contains(new[] { 0f, float.NaN }), Is.False);
        Assert.That(box.Contains(new[] { 0f }), Is.False);
        Assert.That(box.Contains((object)"not an array"), Is.False);
    }

    [Test]
    public void Discrete_SampleAndContains_RespectStart()
    {
        var d = new Discrete(3, start: -1);
        d.Seed(0);
        var values = Enumerable.Range(0, 300).Select(_ => d.SampleValue()).ToArray();
        Assert.That(values.Distinct().Order(), Is.EqualTo(new[] { -1, 0, 1 }));
        Assert.That(d.Contains(2L), Is.False);
        Assert.That(d.Contains(-1), Is.True);
        Assert.That(d.ToString(), Is.EqualTo("Discrete(3, start=-1)"));
    }

    [Test]
    public void Sizes_FollowGymnasiumFlatdim_AndTheBufferEncoding()
    {
        Assert.That((new Discrete(5).FlatDim, new Discrete(5).EncodedSize), Is.EqualTo((5, 1)));
        Assert.That((new MultiDiscrete([2, 3]).FlatDim, new MultiDiscrete([2, 3]).EncodedSize), Is.EqualTo((5, 2)));
        Assert.That((new MultiBinary([2, 3]).FlatDim, new MultiBinary([2, 3]).EncodedSize), Is.EqualTo((6, 6)));
        Assert.That(new Box(0f, 1f, [2, 3]).FlatDim, Is.EqualTo(6));
        var t = new TupleSpace(new Discrete(4), new Box(0f, 1f, [3]));
        Assert.That((t.FlatDim, t.EncodedSize), Is.EqualTo((7, 4)));
    }

    [Test]
    public void DictSpace_FromADictionary_SortsKeys_FromPairs_KeepsOrder()
    {
        var sorted = new DictSpace(new Dictionary<string, Space> { ["velocity"] = new Box(0f, 1f, [1]), ["angle"] = new Discrete(2), ["Zeta"] = new Discrete(3) });
        Assert.That(sorted.Keys, Is.EqualTo(new[] { "Zeta", "angle", "velocity" }), "ordinal sort, as Python sorts str");
        var ordered = new DictSpace(("velocity", new Box(0f, 1f, [1])), ("angle", new Discrete(2)));
        Assert.That(ordered.Keys, Is.EqualTo(new[] { "velocity", "angle" }));
        Assert.Throws<ArgumentException>(() => new DictSpace(("a", new Discrete(2)), ("a", new Discrete(3))));
        Assert.That(Assert.Throws<KeyNotFoundException>(() => _ = ordered["speed"])!.Message, Does.Contain("velocity, angle"));
    }

    [Test]
    public void TupleAndDict_SampleIsContained()
    {
        var d = new DictSpace(new Dictionary<string, Space> { ["a"] = new Discrete(2), ["b"] = new TupleSpace(new Box(-1f, 1f, [2]), new MultiBinary(3)) });
        d.Seed(3);
        for (int i = 0; i < 20; i++) Assert.That(d.Contains(d.Sample()), Is.True);
        Assert.That(d.Contains(new Dictionary<string, object> { ["a"] = 5, ["b"] = new object[] { new[] { 0f, 0f }, new[] { 0, 1, 0 } } }), Is.False);
    }

    [Test]
    public void Batch_FollowsGymnasiumBatchSpace()
    {
        Assert.That(new Box(-1f, 2f, [3]).Batch(4), Is.EqualTo(new Box(-1f, 2f, [4, 3])));
        Assert.That(new Discrete(5, start: 2).Batch(3), Is.EqualTo(new MultiDiscrete([5, 5, 5], [2, 2, 2])));
        var md = new MultiDiscrete([2, 3]).Batch(2);
        Assert.That(md, Is.EqualTo(new Box([0f, 0f, 0f, 0f], [1f, 2f, 1f, 2f], [2, 2], DType.Int64)));
        Assert.That(new MultiBinary(3).Batch(2), Is.EqualTo(new Box(0f, 1f, [2, 3], DType.Int8)));
        var dict = new DictSpace(new Dictionary<string, Space> { ["x"] = new Discrete(2) }).Batch(2);
        Assert.That(dict, Is.EqualTo(new DictSpace(("x", new MultiDiscrete([2, 2])))));
        Assert.That(new TupleSpace(new Discrete(2)).Batch(2), Is.EqualTo(new TupleSpace(new MultiDiscrete([2, 2]))));
    }

    [Test]
    public void Equality_IsStructural()
    {
        Assert.That(new Box(-1f, 1f, [2]), Is.EqualTo(new Box([-1f, -1f], [1f, 1f])));
        Assert.That(new Box(-1f, 1f, [2]), Is.Not.EqualTo(new Box(-1f, 1f, [2], DType.Int64)));
        Assert.That(new Discrete(2), Is.Not.EqualTo(new Discrete(2, 1)));
        Assert.That(new Box(-1f, float.PositiveInfinity, [2]).ToString(), Is.EqualTo("Box(-1, inf, (2,), float32)"));
    }
}
