namespace ClusterEnv.Rendering;

/// <summary>
/// An env that draws itself, as Gymnasium's <c>render()</c> with <c>render_mode="rgb_array"</c>. The classic-control
/// envs implement it when made with <c>{"render_mode": "rgb_array"}</c>; wrappers pass it through
/// (<see cref="RenderExtensions.Render(Envs.IEnv)"/> finds it).
/// </summary>
public interface IRenderable
{
    /// <summary>Gymnasium's <c>render_mode</c>: "rgb_array", or null when the env was made without one (it then cannot render).</summary>
    string? RenderMode { get; }

    /// <summary>Height and width of the frames <see cref="Render(Span{byte})"/> writes.</summary>
    (int Height, int Width) RenderShape { get; }

    /// <summary>Draws the current state into <paramref name="rgb"/>: height × width × 3 bytes, row-major, top row first (NumPy's <c>(H, W, 3)</c> uint8).</summary>
    /// <exception cref="InvalidOperationException">The env has no render mode, or has not been reset.</exception>
    void Render(Span<byte> rgb);
}

/// <summary>One RGB frame: <see cref="Height"/> × <see cref="Width"/> × 3 bytes, row-major (NumPy's <c>(H, W, 3)</c> uint8).</summary>
public sealed record RgbFrame(int Height, int Width, byte[] Pixels)
{
    /// <summary>The colour at row <paramref name="y"/>, column <paramref name="x"/>.</summary>
    public (byte R, byte G, byte B) this[int y, int x]
    {
        get
        {
            int i = (y * Width + x) * 3;
            return (Pixels[i], Pixels[i + 1], Pixels[i + 2]);
        }
    }
}
