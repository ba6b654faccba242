using ClusterEnv.Envs;
using ClusterEnv.Spaces;

namespace ClusterEnv.Wrappers;

/// <summary>The checks Gymnasium's image wrappers make of the space they wrap, with errors that say what to do.</summary>
internal static class ImageSpaces
{
    /// <summary>A uint8 Box of 0..255 with <paramref name="ranks"/> dimensions, e.g. (H, W) or (H, W, C).</summary>
    public static Box Require(IEnv env, string wrapper, params int[] ranks)
    {
        if (env.ObservationSpace is not Box { DType: DType.UInt8 } box || !AllEqual(box.Low64, 0) || !AllEqual(box.High64, 255))
            throw new ArgumentException($"{wrapper} needs image observations (a uint8 Box of 0..255); {env} observes {env.ObservationSpace}. " +
                                        "Add AddRenderObservation first to observe rendered frames.");
        if (Array.IndexOf(ranks, box.Shape.Count) < 0)
            throw new ArgumentException($"{wrapper} needs an image of {string.Join(" or ", ranks.Select(r => r == 2 ? "(H, W)" : "(H, W, C)"))}; the space is {box}.");
        return box;
    }

    private static bool AllEqual(ReadOnlySpan<double> values, double v)
    {
        foreach (double x in values) if (x != v) return false;
        return true;
    }

    /// <summary>The Box of images of <paramref name="shape"/>: uint8, 0..255.</summary>
    public static Box Of(params int[] shape) => new(0f, 255f, shape, DType.UInt8);
}
