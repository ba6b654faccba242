using ClusterEnv.Envs;
using ClusterEnv.Vector;
using ClusterEnv.Wrappers;

namespace ClusterEnv.Rendering;

/// <summary>Gymnasium's <c>env.render()</c> and <c>envs.render()</c> for rgb_array rendering.</summary>
public static class RenderExtensions
{
    /// <summary>The env that draws for <paramref name="env"/>: it, or the first env under its wrappers that implements <see cref="IRenderable"/>.</summary>
    /// <exception cref="InvalidOperationException">Nothing in the chain renders.</exception>
    public static IRenderable Renderer(this IEnv env)
    {
        for (IEnv? e = env; e is not null; e = (e as EnvWrapper)?.Env)
            if (e is IRenderable r) return r;
        throw new InvalidOperationException($"{env} cannot render: no env under its wrappers implements IRenderable (the classic-control envs do, made with render_mode \"rgb_array\").");
    }

    /// <summary>The current frame as a new array (Gymnasium's <c>render()</c> in "rgb_array" mode). Use <see cref="IRenderable.Render(Span{byte})"/> to draw into a buffer you keep.</summary>
    public static RgbFrame Render(this IEnv env)
    {
        var r = env.Renderer();
        var (h, w) = r.RenderShape;
        var pixels = new byte[h * w * 3];
        r.Render(pixels);
        return new RgbFrame(h, w, pixels);
    }

    /// <summary>Gymnasium's <c>VectorEnv.render()</c>: one frame per sub-env, in order (through the workers for a cluster).</summary>
    public static IReadOnlyList<RgbFrame> Render(this IVectorEnv envs) =>
        envs.Call("render").Select((f, i) => f as RgbFrame
            ?? throw new InvalidOperationException($"Sub-env {i} returned {f?.GetType().Name ?? "nothing"} from render, not an RGB frame; make the envs with render_mode \"rgb_array\".")).ToArray();
}
