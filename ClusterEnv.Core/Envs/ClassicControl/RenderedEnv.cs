using ClusterEnv.Rendering;

namespace ClusterEnv.Envs.ClassicControl;

/// <summary>
/// A classic-control env that draws itself as Gymnasium's pygame renderer does (<c>render_mode="rgb_array"</c>):
/// the frame is drawn with y up on a canvas the env keeps, then flipped, so a frame costs no allocation.
/// </summary>
public abstract class RenderedEnv : EnvBase, IRenderable
{
    /// <summary>The render modes these envs support (Gymnasium's <c>metadata["render_modes"]</c> less "human", which needs a display).</summary>
    public static readonly IReadOnlyList<string> RenderModes = ["rgb_array"];

    private readonly int _width, _height;
    private Canvas? _canvas;

    /// <summary>An env drawing <paramref name="width"/> × <paramref name="height"/> frames when <paramref name="renderMode"/> is "rgb_array".</summary>
    protected RenderedEnv(string? renderMode, int width, int height)
    {
        RenderMode = CheckRenderMode(GetType().Name, renderMode);
        _width = width;
        _height = height;
    }

    /// <inheritdoc />
    public string? RenderMode { get; }

    /// <inheritdoc />
    public (int Height, int Width) RenderShape => (_height, _width);

    /// <inheritdoc />
    public void Render(Span<byte> rgb)
    {
        if (RenderMode is null)
            throw new InvalidOperationException($"{GetType().Name} was made without a render mode; make it with render_mode \"rgb_array\", e.g. Gym.Make(id, new Dictionary<string, object> {{ [\"render_mode\"] = \"rgb_array\" }}).");
        if (rgb.Length != _height * _width * 3)
            throw new ArgumentException($"{GetType().Name} renders {_height}×{_width}×3 = {_height * _width * 3} bytes; the buffer has {rgb.Length}.", nameof(rgb));
        if (!HasState) throw new ResetNeededException($"{GetType().Name} has no state to draw yet; call Reset before Render.");
        var canvas = _canvas ??= new Canvas(_width, _height);
        Draw(canvas);
        canvas.CopyFlippedTo(rgb);
    }

    /// <summary>The current frame as a new array (what <c>envs.Call("render")</c> returns for this env).</summary>
    public RgbFrame Render() => RenderExtensions.Render(this);

    /// <summary>True once the env has a state to draw (after the first reset).</summary>
    protected abstract bool HasState { get; }

    /// <summary>Draws the current state with y up (the frame is flipped afterwards, as Gymnasium's renderers flip).</summary>
    internal abstract void Draw(Canvas canvas);

    /// <summary>Reads <c>render_mode</c> from constructor arguments.</summary>
    protected static string? RenderModeArg(IReadOnlyDictionary<string, object>? kwargs) =>
        kwargs is not null && kwargs.TryGetValue("render_mode", out var v)
            ? v switch
            {
                null => null,
                string s => s,
                _ => throw new ArgumentException($"Argument 'render_mode' must be a string (\"rgb_array\") or null, got {v} ({v.GetType().Name})."),
            }
            : null;

    private static string? CheckRenderMode(string env, string? mode) => mode switch
    {
        null or "rgb_array" => mode,
        "human" => throw new ArgumentException($"{env}: render_mode \"human\" opens a window, which this library does not; use \"rgb_array\" and save or show the frames (RecordVideo)."),
        _ => throw new ArgumentException($"{env}: render_mode \"{mode}\" is not supported; use \"rgb_array\" or none."),
    };
}
