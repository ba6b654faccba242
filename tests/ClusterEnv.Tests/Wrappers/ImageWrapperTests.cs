using System.IO.Compression;
using System.Text.Json;
using ClusterEnv.Envs;
using ClusterEnv.Spaces;
using ClusterEnv.Wrappers;

namespace ClusterEnv.Tests.Wrappers;

/// <summary>
/// The image wrappers against Gymnasium 1.3.0 with Debian's OpenCV 4.6 and NumPy 1.24 (Fixtures/image_wrappers.py
/// wrote what they returned): resizes of random images, grayscale, and the whole pixel-CartPole pipeline.
/// </summary>
public class ImageWrapperTests
{
    private static readonly Dictionary<string, object> RgbArray = new() { ["render_mode"] = "rgb_array" };

    private static (JsonElement[] Cases, Stream Data) Fixture()
    {
        string dir = Path.Combine(TestContext.CurrentContext.TestDirectory, "Reference", "Fixtures", "render");
        var cases = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "image_wrappers.json"))).RootElement.EnumerateArray().ToArray();
        return (cases, new GZipStream(File.OpenRead(Path.Combine(dir, "image_wrappers.bin.gz")), CompressionMode.Decompress));
    }

    private static byte[] Read(Stream s, int n)
    {
        var b = new byte[n];
        s.ReadExactly(b);
        return b;
    }

    private static float[] Floats(byte[] b) => b.Select(x => (float)x).ToArray();

    [Test]
    public void ResizeAndGrayscale_MatchOpenCvAndNumPy()
    {
        var (cases, data) = Fixture();
        using (data)
        {
            int checkedCases = 0;
            foreach (var c in cases)
            {
                var shape = c.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()).ToArray();
                if (c.GetProperty("kind").GetString() == "resize")
                {
                    var o = c.GetProperty("out").EnumerateArray().Select(e => e.GetInt32()).ToArray();
                    var input = Read(data, shape[0] * shape[1] * shape[2]);
                    var expected = Read(data, o[0] * o[1] * shape[2]);
                    var got = new byte[expected.Length];
                    var resize = new AreaResize(shape[0], shape[1], o[0], o[1], shape[2]);
                    resize.Apply<byte, byte>(input, got);
                    Assert.That(got, Is.EqualTo(expected), $"resize ({string.Join(", ", shape)}) to ({o[0]}, {o[1]})");
                    var gotFloats = new float[expected.Length];
                    resize.Apply<float, float>(Floats(input), gotFloats);
                    Assert.That(gotFloats, Is.EqualTo(Floats(expected)), "the same from floats");
                    checkedCases++;
                }
                else if (c.GetProperty("kind").GetString() == "gray")
                {
                    var input = Read(data, shape[0] * shape[1] * 3);
                    var expected = Read(data, shape[0] * shape[1]);
                    var got = new byte[expected.Length];
                    GrayscaleObservation.Convert(input, got);
                    Assert.That(got, Is.EqualTo(expected), "grayscale");
                    checkedCases++;
                }
            }
            Assert.That(checkedCases, Is.EqualTo(12));
        }
    }

    [TestCase("reset", FramePadding.Reset)]
    [TestCase("zero", FramePadding.Zero)]
    public void PixelCartPolePipeline_MatchesGymnasium(string padding, FramePadding ours)
    {
        var (cases, data) = Fixture();
        using (data)
        {
            foreach (var c in cases)
            {
                var shape = c.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()).ToArray();
                int n = shape.Aggregate(1, (a, b) => a * b);
                if (c.GetProperty("kind").GetString() != "pipeline")
                {
                    Read(data, c.GetProperty("kind").GetString() == "gray" ? n + n / 3 : n + c.GetProperty("out").EnumerateArray().Aggregate(shape[2], (a, e) => a * e.GetInt32()));
                    continue;
                }
                var frames = Enumerable.Range(0, c.GetProperty("frames").GetInt32()).Select(_ => Read(data, n)).ToArray();
                if (c.GetProperty("padding").GetString() != padding) continue;
                var actions = c.GetProperty("actions").EnumerateArray().Select(e => e.GetInt32()).ToArray();

                using var env = new FrameStackObservation(new ResizeObservation(new GrayscaleObservation(new AddRenderObservation(Gym.Make("CartPole-v1", RgbArray))), 84, 84), 4, ours);
                Assert.That(env.ObservationSpace, Is.EqualTo(new Box(0f, 255f, [4, 84, 84], DType.UInt8)));
                var obs = new float[n];
                env.Reset(obs, seed: 3);
                int f = 0;
                Assert.That(obs, Is.EqualTo(Floats(frames[f++])), "reset");
                foreach (int a in actions)
                {
                    var r = env.Step(a, obs);
                    Assert.That(obs, Is.EqualTo(Floats(frames[f++])), $"frame {f - 1}");
                    if (r.Terminated || r.Truncated)
                    {
                        env.Reset(obs);
                        Assert.That(obs, Is.EqualTo(Floats(frames[f++])), $"reset at frame {f - 1}");
                    }
                }
                Assert.That(f, Is.EqualTo(frames.Length));
                return;
            }
            Assert.Fail($"no pipeline case with padding {padding}");
        }
    }

    [Test]
    public void BytePath_GivesTheFloatPathsValues_AndStaysInBytesThroughTheWrappers()
    {
        IByteObservationEnv Make() => new FrameStackObservation(new ResizeObservation(new GrayscaleObservation(new AddRenderObservation(Gym.Make("CartPole-v1", RgbArray))), 84, 84), 4);
        using var a = Make();
        using var b = Make();
        Assert.That(ByteObservations.Of(a), Is.SameAs(a));
        var floats = new float[4 * 84 * 84];
        var bytes = new byte[floats.Length];
        a.Reset(floats, seed: 9);
        b.ResetBytes(bytes, seed: 9);
        Assert.That(floats, Is.EqualTo(Floats(bytes)));
        for (int t = 0; t < 20; t++)
        {
            var ra = a.Step(t % 2, floats);
            var rb = b.StepBytes(new EnvAction([t % 2]), bytes);
            Assert.That(floats, Is.EqualTo(Floats(bytes)), $"step {t}");
            Assert.That(ra, Is.EqualTo(rb));
            if (ra.Terminated) break;
        }
        // not an image: no byte path
        using var plain = new FrameStackObservation(Gym.Make("CartPole-v1"), 2);
        Assert.That(ByteObservations.Of(plain), Is.Null);
        Assert.That(() => plain.ResetBytes(new byte[8]), Throws.InvalidOperationException);
    }

    [Test]
    public void AddRenderObservation_NotRenderOnly_AddsPixelsBesideState()
    {
        using var env = new AddRenderObservation(Gym.Make("CartPole-v1", RgbArray), renderOnly: false);
        var dict = (DictSpace)env.ObservationSpace;
        Assert.That(dict.Items.Select(kv => kv.Key), Is.EqualTo(new[] { "pixels", "state" }));
        var obs = new float[dict.EncodedSize];
        env.Reset(obs, seed: 5);
        using var plain = Gym.Make("CartPole-v1", RgbArray);
        var (state, _) = plain.Reset(seed: 5);
        var layout = SpaceLayout.Of(dict);
        Assert.That(layout.Slice(obs, "state").ToArray(), Is.EqualTo(state));
        Assert.That(layout.Slice(obs, "pixels").ToArray(), Is.EqualTo(Floats(ClusterEnv.Rendering.RenderExtensions.Render(plain).Pixels)));
    }

    [Test]
    public void FrameStack_KeepsTheLastFramesOldestFirst_AndCustomPadding()
    {
        using var env = new FrameStackObservation(Gym.Make("CartPole-v1"), 3, FramePadding.Custom, [1f, 2f, 0.1f, 4f]);
        var obs = new float[12];
        env.Reset(obs, seed: 0);
        using var plain = Gym.Make("CartPole-v1");
        var (o0, _) = plain.Reset(seed: 0);
        Assert.That(obs, Is.EqualTo(new[] { 1f, 2f, 0.1f, 4f, 1f, 2f, 0.1f, 4f }.Concat(o0)));
        env.Step(1, obs);
        var (o1, _, _, _, _) = plain.Step(1);
        env.Step(0, obs);
        var (o2, _, _, _, _) = plain.Step(0);
        env.Step(1, obs);
        var (o3, _, _, _, _) = plain.Step(1);
        Assert.That(obs, Is.EqualTo(o1.Concat(o2).Concat(o3)));
        Assert.That(() => new FrameStackObservation(Gym.Make("CartPole-v1"), 3, FramePadding.Custom, [100f, 0f, 0f, 0f]), Throws.ArgumentException.With.Message.Contains("not an observation"));
        Assert.That(() => new FrameStackObservation(Gym.Make("CartPole-v1"), 0), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public void ImageWrappers_RefuseWhatIsNotAnImage()
    {
        Assert.That(() => new GrayscaleObservation(Gym.Make("CartPole-v1")), Throws.ArgumentException.With.Message.Contains("AddRenderObservation"));
        Assert.That(() => new ResizeObservation(Gym.Make("CartPole-v1"), 8, 8), Throws.ArgumentException.With.Message.Contains("uint8 Box"));
        Assert.That(() => new AddRenderObservation(Gym.Make("CartPole-v1")), Throws.ArgumentException.With.Message.Contains("rgb_array"));
        var gray = new GrayscaleObservation(new AddRenderObservation(Gym.Make("CartPole-v1", RgbArray)));
        Assert.That(() => new GrayscaleObservation(gray), Throws.ArgumentException.With.Message.Contains("(H, W, C)"));
        Assert.That(() => new ResizeObservation(gray, 800, 800), Throws.ArgumentException.With.Message.Contains("enlarges"));
        gray.Dispose();
    }
}

public class RecordVideoTests
{
    [Test]
    public void RecordVideo_WritesTheTriggeredEpisodesAsPngFramesOfWhatWasRendered()
    {
        string dir = Path.Combine(Path.GetTempPath(), "ce-video-" + Guid.NewGuid().ToString("N"));
        try
        {
            var kwargs = new Dictionary<string, object> { ["render_mode"] = "rgb_array" };
            using var env = new RecordVideo(Gym.Make("CartPole-v1", kwargs), dir, episodeTrigger: e => e % 2 == 0);
            var renderer = ClusterEnv.Rendering.RenderExtensions.Renderer(env);
            var expected = new List<byte[]>();
            var obs = new float[4];
            var frame = new byte[400 * 600 * 3];
            for (int episode = 0; episode < 3; episode++)
            {
                env.Reset(obs, seed: episode);
                if (episode == 0) { renderer.Render(frame); expected.Add((byte[])frame.Clone()); }
                for (bool done = false; !done;)
                {
                    var r = env.Step(obs[2] > 0 ? 1 : 0, obs);
                    done = r.Terminated || r.Truncated;
                    if (episode == 0) { renderer.Render(frame); expected.Add((byte[])frame.Clone()); }
                }
            }
            Assert.That(Directory.GetDirectories(dir).Select(Path.GetFileName).Order(), Is.EqualTo(new[] { "rl-video-episode-0", "rl-video-episode-2" }));
            var files = Directory.GetFiles(Path.Combine(dir, "rl-video-episode-0")).Order().ToArray();
            Assert.That(files, Has.Length.EqualTo(expected.Count));
            foreach (int i in new[] { 0, files.Length / 2, files.Length - 1 })
            {
                var img = StbImageSharp.ImageResult.FromMemory(File.ReadAllBytes(files[i]), StbImageSharp.ColorComponents.RedGreenBlue);
                Assert.That((img.Height, img.Width), Is.EqualTo((400, 600)));
                Assert.That(img.Data, Is.EqualTo(expected[i]), $"frame {i}");
            }
            Assert.That(Enumerable.Range(0, 30).Where(RecordVideo.CappedCubicSchedule), Is.EqualTo(new[] { 0, 1, 8, 27 }));
            Assert.That(RecordVideo.CappedCubicSchedule(2000) && !RecordVideo.CappedCubicSchedule(1331), Is.True);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }
}
