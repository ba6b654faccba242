using ClusterEnv.Envs;
using ClusterEnv.Rendering;
using StbImageWriteSharp;

namespace ClusterEnv.Wrappers;

/// <summary>
/// Gymnasium's <c>RecordVideo</c> with PNG frames instead of an MP4: each recording is a folder
/// <c>{video_folder}/{name_prefix}-episode-{id}</c> (or <c>-step-{id}</c>) of <c>frame-000000.png</c>, … written as
/// they are captured (a run stopped mid-episode keeps what it drew). Recordings start when
/// <c>episode_trigger(episode_id)</c> or <c>step_trigger(step_id)</c> is true — by default Gymnasium's capped cubic
/// schedule (episodes 0, 1, 8, 27, …, 729, then every 1000th) — and run to the next reset, or for
/// <c>video_length</c> frames when that is positive, exactly as Gymnasium's does. The env must render "rgb_array".
/// </summary>
public sealed class RecordVideo : EnvWrapper
{
    private readonly IRenderable _renderer;
    private readonly Func<int, bool>? _episodeTrigger, _stepTrigger;
    private readonly int _videoLength;
    private readonly byte[] _frame;
    private readonly ImageWriter _png = new();
    private string? _recording;
    private int _frames, _episodeId = -1, _stepId = -1;

    /// <summary>Records <paramref name="env"/>'s frames into <paramref name="videoFolder"/> (created when missing).</summary>
    public RecordVideo(IEnv env, string videoFolder, Func<int, bool>? episodeTrigger = null, Func<int, bool>? stepTrigger = null,
        int videoLength = 0, string namePrefix = "rl-video") : base(env)
    {
        _renderer = env.Renderer();
        if (_renderer.RenderMode != "rgb_array")
            throw new ArgumentException($"RecordVideo needs an env made with render_mode \"rgb_array\"; {env} has render_mode {(_renderer.RenderMode is null ? "None" : $"\"{_renderer.RenderMode}\"")}.");
        ArgumentException.ThrowIfNullOrWhiteSpace(videoFolder);
        ArgumentException.ThrowIfNullOrWhiteSpace(namePrefix);
        if (videoLength < 0) throw new ArgumentOutOfRangeException(nameof(videoLength), videoLength, "video_length is 0 (whole episodes) or a positive number of frames.");
        VideoFolder = Path.GetFullPath(videoFolder);
        Directory.CreateDirectory(VideoFolder);
        _episodeTrigger = episodeTrigger ?? (stepTrigger is null ? CappedCubicSchedule : null);
        _stepTrigger = stepTrigger;
        _videoLength = videoLength == 0 ? int.MaxValue : videoLength;
        NamePrefix = namePrefix;
        var (h, w) = _renderer.RenderShape;
        _frame = new byte[h * w * 3];
    }

    /// <summary>Where recordings go.</summary>
    public string VideoFolder { get; }

    /// <summary>The start of each recording's folder name.</summary>
    public string NamePrefix { get; }

    /// <summary>The folder being recorded into, or null.</summary>
    public string? Recording => _recording;

    /// <summary>Gymnasium's <c>capped_cubic_video_schedule</c>: perfect cubes below 1000, then every 1000th episode.</summary>
    public static bool CappedCubicSchedule(int episodeId) =>
        episodeId < 1000 ? (int)Math.Pow((int)Math.Round(Math.Pow(episodeId, 1.0 / 3), MidpointRounding.ToEven), 3) == episodeId : episodeId % 1000 == 0;

    /// <inheritdoc />
    public override EnvInfo Reset(Span<float> observation, long? seed = null, ResetOptions? options = null)
    {
        var info = Env.Reset(observation, seed, options);
        _episodeId++;
        if (_recording is not null && _videoLength == int.MaxValue) Stop();
        if (_episodeTrigger?.Invoke(_episodeId) == true) Start($"{NamePrefix}-episode-{_episodeId}");
        Capture();
        return info;
    }

    /// <inheritdoc />
    public override StepResult Step(EnvAction action, Span<float> observation)
    {
        var r = Env.Step(action, observation);
        _stepId++;
        if (_stepTrigger?.Invoke(_stepId) == true) Start($"{NamePrefix}-step-{_stepId}");
        Capture();
        return r;
    }

    private void Start(string name)
    {
        if (_recording is not null) Stop();
        _recording = Path.Combine(VideoFolder, name);
        Directory.CreateDirectory(_recording);
        _frames = 0;
    }

    private void Stop() => _recording = null;

    private void Capture()
    {
        if (_recording is null) return;
        _renderer.Render(_frame);
        var (h, w) = _renderer.RenderShape;
        using (var file = File.Create(Path.Combine(_recording, $"frame-{_frames:D6}.png")))
            _png.WritePng(_frame, w, h, ColorComponents.RedGreenBlue, file);
        _frames++;
        if (_frames > _videoLength) Stop();
    }
}
