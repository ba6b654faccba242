using System.IO.Compression;
using System.Text.Json;
using ClusterEnv.Envs;
using ClusterEnv.Envs.ClassicControl;
using ClusterEnv.Rendering;

namespace ClusterEnv.Tests.Rendering;

/// <summary>
/// Frames against real Gymnasium 1.3.0 with Debian's pygame 2.1.2 (Fixtures/render_frames.py drew them): the same
/// states drawn here, compared pixel by pixel.
/// </summary>
public class RenderTests
{
    private static string Fixture(string file) => Path.Combine(TestContext.CurrentContext.TestDirectory, "Reference", "Fixtures", "render", file);

    internal sealed record Reference(string Id, int Height, int Width, double[][] States, double[] LastU, byte[][] Frames);

    internal static Reference Load(string id)
    {
        var root = JsonDocument.Parse(File.ReadAllText(Fixture(id + ".json"))).RootElement;
        int h = root.GetProperty("height").GetInt32(), w = root.GetProperty("width").GetInt32();
        var states = root.GetProperty("states").EnumerateArray().Select(s => s.EnumerateArray().Select(v => v.GetDouble()).ToArray()).ToArray();
        var lastU = root.GetProperty("last_u").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        using var gz = new GZipStream(File.OpenRead(Fixture(id + ".rgb.gz")), CompressionMode.Decompress);
        var frames = new byte[states.Length][];
        for (int i = 0; i < frames.Length; i++)
        {
            frames[i] = new byte[h * w * 3];
            gz.ReadExactly(frames[i]);
        }
        return new Reference(id, h, w, states, lastU, frames);
    }

    /// <summary>Renders every reference state with our env; returns (identical pixels / all pixels, frames).</summary>
    internal static (double Identical, int Pixels) Compare(Reference r, Action<IEnv, double[], double> setState)
    {
        using var env = Gym.Make(r.Id, new Dictionary<string, object> { ["render_mode"] = "rgb_array" });
        env.Reset(seed: 0);
        long same = 0, all = 0;
        var frame = new byte[r.Height * r.Width * 3];
        for (int i = 0; i < r.States.Length; i++)
        {
            setState(env.Unwrapped(), r.States[i], r.LastU[i]);
            env.Renderer().Render(frame);
            for (int p = 0; p < frame.Length; p += 3, all++)
                if (frame[p] == r.Frames[i][p] && frame[p + 1] == r.Frames[i][p + 1] && frame[p + 2] == r.Frames[i][p + 2]) same++;
        }
        return ((double)same / all, (int)(all / r.States.Length));
    }

    [Test]
    public void CartPole_FramesMatchGymnasiumPixelForPixel()
    {
        var r = Load("CartPole-v1");
        var (identical, _) = Compare(r, (e, s, _) => ((CartPole)e).State = (s[0], s[1], s[2], s[3]));
        TestContext.Out.WriteLine($"CartPole: {identical:P4} identical over {r.States.Length} states");
        Assert.That(identical, Is.EqualTo(1.0), "every pixel of every frame");
    }

    // Pendulum's torque arrow is an image file in Gymnasium and is not drawn here: 99.75% of its pixels agree (the rest
    // is the arrow); the others are exact.
    [TestCase("Acrobot-v1", 1.0)]
    [TestCase("MountainCar-v0", 1.0)]
    [TestCase("MountainCarContinuous-v0", 1.0)]
    [TestCase("Pendulum-v1", 0.995)]
    public void ClassicControl_FramesMatchGymnasium(string id, double atLeast)
    {
        var r = Load(id);
        var (identical, _) = Compare(r, (e, s, _) =>
        {
            switch (e)
            {
                case Acrobot a: a.State = (s[0], s[1], s[2], s[3]); break;
                case MountainCar m: m.State = (s[0], s[1]); break;
                case MountainCarContinuous m: m.State = (s[0], s[1]); break;
                case Pendulum p: p.State = (s[0], s[1]); break;
            }
        });
        TestContext.Out.WriteLine($"{id}: {identical:P4} identical over {r.States.Length} states");
        Assert.That(identical, Is.GreaterThanOrEqualTo(atLeast));
    }

    [Test]
    public void VectorRender_SyncAndThroughWorkers_GiveEachSubEnvsFrame()
    {
        var kwargs = new Dictionary<string, object> { ["render_mode"] = "rgb_array" };
        var expected = new List<byte[]>();
        for (int i = 0; i < 3; i++)
        {
            using var one = Gym.Make("CartPole-v1", kwargs);
            one.Reset(seed: 7 + i);
            expected.Add(one.Render().Pixels);
        }
        Assert.That(expected[0], Is.Not.EqualTo(expected[1]), "different seeds, different frames");

        using var sync = Gym.MakeVec("CartPole-v1", 3, kwargs: kwargs);
        sync.Reset(seed: 7);
        Assert.That(sync.Render().Select(f => f.Pixels), Is.EqualTo(expected));

        var (cluster, workers) = Cluster.TestCluster.InProcess("CartPole-v1", [2, 1], envArgs: _ => new() { ["render_mode"] = "rgb_array" });
        using (cluster)
        {
            cluster.Reset(seed: 7);
            var frames = cluster.Render();
            Assert.That(frames.Select(f => (f.Height, f.Width)), Is.All.EqualTo((400, 600)));
            Assert.That(frames.Select(f => f.Pixels), Is.EqualTo(expected));
        }
        Task.WaitAll(workers, TimeSpan.FromSeconds(20));
    }

    [Test]
    public void Render_ShapeAndModeErrors()
    {
        using var plain = Gym.Make("CartPole-v1");
        Assert.That(() => plain.Renderer().Render(new byte[400 * 600 * 3]), Throws.InvalidOperationException.With.Message.Contains("render_mode"));
        using var env = Gym.Make("CartPole-v1", new Dictionary<string, object> { ["render_mode"] = "rgb_array" });
        Assert.That(() => env.Render(), Throws.TypeOf<ResetNeededException>());
        env.Reset(seed: 1);
        var f = env.Render();
        Assert.That((f.Height, f.Width, f.Pixels.Length), Is.EqualTo((400, 600, 400 * 600 * 3)));
        Assert.That(() => env.Renderer().Render(new byte[10]), Throws.ArgumentException.With.Message.Contains("720000"));
        Assert.That(() => Gym.Make("CartPole-v1", new Dictionary<string, object> { ["render_mode"] = "human" }), Throws.ArgumentException.With.Message.Contains("rgb_array"));
        Assert.That(() => Gym.Make("CartPole-v1", new Dictionary<string, object> { ["render_mode"] = "rgb" }), Throws.ArgumentException.With.Message.Contains("not supported"));
    }
}
