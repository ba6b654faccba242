using ClusterEnv.Envs;
using ClusterEnv.Rendering;
using ClusterEnv.Spaces;

namespace ClusterEnv.Wrappers;

/// <summary>
/// Gymnasium's <c>AddRenderObservation</c>: the rendered frame becomes the observation (<c>render_only</c>, the
/// default: a uint8 Box of (H, W, 3)), or is added to it under <c>render_key</c> in a Dict (the original observation
/// under <c>obs_key</c>, or its own keys when it is a Dict). The env must be made with render_mode "rgb_array".
/// </summary>
/// <remarks>Like Gymnasium's, the constructor resets the env once to learn the frame's shape.</remarks>
public sealed class AddRenderObservation : EnvWrapper, IByteObservationEnv
{
    private readonly IRenderable _renderer;
    private readonly Space _space;
    private readonly byte[] _frame;
    private readonly float[] _inner;
    private readonly bool _renderOnly;
    // Where each part lands in this wrapper's row: the frame, and (when not render-only) slices of the inner row.
    private readonly int _frameOffset;
    private readonly (int From, int To, int Length)[] _copies;

    /// <summary>Wraps <paramref name="env"/>, which must render "rgb_array" frames.</summary>
    public AddRenderObservation(IEnv env, bool renderOnly = true, string renderKey = "pixels", string obsKey = "state") : base(env)
    {
        _renderer = env.Renderer();
        if (_renderer.RenderMode != "rgb_array")
            throw new ArgumentException($"AddRenderObservation needs an env made with render_mode \"rgb_array\"; {env} has render_mode {(_renderer.RenderMode is null ? "None" : $"\"{_renderer.RenderMode}\"")}.");
        env.Reset(new float[env.ObservationSpace.EncodedSize]);
        var (h, w) = _renderer.RenderShape;
        var pixels = ImageSpaces.Of(h, w, 3);
        _frame = new byte[h * w * 3];
        _inner = new float[env.ObservationSpace.EncodedSize];
        _renderOnly = renderOnly;
        if (renderOnly)
        {
            _space = pixels;
            _copies = [];
            return;
        }
        var parts = new Dictionary<string, Space>(StringComparer.Ordinal) { [renderKey] = pixels };
        var innerOffsets = new Dictionary<string, (int Offset, int Size)>(StringComparer.Ordinal);
        if (env.ObservationSpace is DictSpace inner)
        {
            int at = 0;
            foreach (var (key, sub) in inner.Items)
            {
                if (key == renderKey) throw new ArgumentException($"The observation already has a key '{renderKey}'; give AddRenderObservation another render_key.");
                parts[key] = sub;
                innerOffsets[key] = (at, sub.EncodedSize);
                at += sub.EncodedSize;
            }
        }
        else
        {
            if (obsKey == renderKey) throw new ArgumentException($"render_key and obs_key are both '{renderKey}'; they must differ.");
            parts[obsKey] = env.ObservationSpace;
            innerOffsets[obsKey] = (0, env.ObservationSpace.EncodedSize);
        }
        var dict = new DictSpace(parts);
        _space = dict;
        var copies = new List<(int, int, int)>();
        int offset = 0;
        foreach (var (key, sub) in dict.Items)
        {
            if (key == renderKey) _frameOffset = offset;
            else copies.Add((innerOffsets[key].Offset, offset, innerOffsets[key].Size));
            offset += sub.EncodedSize;
        }
        _copies = copies.ToArray();
    }

    /// <inheritdoc />
    public override Space ObservationSpace => _space;

    /// <inheritdoc />
    public override EnvInfo Reset(Span<float> observation, long? seed = null, ResetOptions? options = null)
    {
        var info = Env.Reset(_inner, seed, options);
        Write(observation);
        return info;
    }

    /// <inheritdoc />
    public override StepResult Step(EnvAction action, Span<float> observation)
    {
        var r = Env.Step(action, _inner);
        Write(observation);
        return r;
    }

    /// <inheritdoc />
    /// <exception cref="InvalidOperationException">The wrapper is not render-only (its observations are a Dict).</exception>
    public EnvInfo ResetBytes(Span<byte> observation, long? seed = null, ResetOptions? options = null)
    {
        RequireRenderOnly();
        var info = Env.Reset(_inner, seed, options);
        _renderer.Render(observation);
        return info;
    }

    /// <inheritdoc />
    public StepResult StepBytes(EnvAction action, Span<byte> observation)
    {
        RequireRenderOnly();
        var r = Env.Step(action, _inner);
        _renderer.Render(observation);
        return r;
    }

    private void RequireRenderOnly()
    {
        if (!_renderOnly) throw new InvalidOperationException("AddRenderObservation(render_only: false) observes a Dict, not an image; use Reset and Step.");
    }

    private void Write(Span<float> observation)
    {
        _renderer.Render(_frame);
        var pixels = _renderOnly ? observation : observation.Slice(_frameOffset, _frame.Length);
        Pixels.ToFloat(_frame, pixels);
        foreach (var (from, to, length) in _copies) _inner.AsSpan(from, length).CopyTo(observation.Slice(to, length));
    }
}
