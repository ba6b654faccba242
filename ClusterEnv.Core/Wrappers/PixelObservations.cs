using System.Globalization;
using ClusterEnv.Envs;

namespace ClusterEnv.Wrappers;

/// <summary>
/// Learning from pixels, as Atari agents do: the env is made with render_mode "rgb_array" and its frames, not its
/// state, are the observations — rendered (<see cref="AddRenderObservation"/>), turned gray
/// (<see cref="GrayscaleObservation"/>), shrunk to <see cref="Height"/> × <see cref="Width"/>
/// (<see cref="ResizeObservation"/>) and stacked <see cref="Stack"/> deep (<see cref="FrameStackObservation"/>), giving
/// (Stack, Height, Width) uint8 images. Written "84x84x4"; workers apply it to the envs they host.
/// </summary>
public sealed record PixelObservations(int Height = 84, int Width = 84, int Stack = 4)
{
    /// <summary>Makes <paramref name="envId"/> with render_mode "rgb_array" (added to <paramref name="kwargs"/>) and wraps it.</summary>
    public IEnv Make(string envId, IReadOnlyDictionary<string, object>? kwargs = null)
    {
        var args = new Dictionary<string, object>(kwargs ?? new Dictionary<string, object>()) { ["render_mode"] = "rgb_array" };
        return Wrap(Gym.Make(envId, args));
    }

    /// <summary>Wraps an env made with render_mode "rgb_array".</summary>
    public IEnv Wrap(IEnv env)
    {
        try
        {
            return new FrameStackObservation(new ResizeObservation(new GrayscaleObservation(new AddRenderObservation(env)), Height, Width), Stack);
        }
        catch
        {
            env.Dispose();
            throw;
        }
    }

    /// <summary>"HxWxS", e.g. "84x84x4".</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Height}x{Width}x{Stack}");

    /// <summary>Parses "HxWxS"; the error names the form.</summary>
    public static PixelObservations Parse(string text)
    {
        var parts = (text ?? "").Split('x');
        if (parts.Length == 3 && parts.All(p => int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v > 0))
        {
            int[] v = parts.Select(p => int.Parse(p, CultureInfo.InvariantCulture)).ToArray();
            return new PixelObservations(v[0], v[1], v[2]);
        }
        throw new ArgumentException($"Pixel observations '{text}' must be HEIGHTxWIDTHxSTACK with positive numbers, e.g. 84x84x4.");
    }
}
