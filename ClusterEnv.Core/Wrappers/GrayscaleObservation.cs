using ClusterEnv.Envs;
using ClusterEnv.Spaces;

namespace ClusterEnv.Wrappers;

/// <summary>
/// Gymnasium's <c>GrayscaleObservation</c>: an RGB image (H, W, 3) becomes its luminance, <c>0.2125·R + 0.7154·G +
/// 0.0721·B</c> in float64 and truncated to uint8 as NumPy's <c>astype</c> does, of shape (H, W), or (H, W, 1) with
/// <c>keep_dim</c>.
/// </summary>
public sealed class GrayscaleObservation : ImageWrapper
{
    private readonly Box _space;

    /// <summary>Wraps <paramref name="env"/>, whose observations must be uint8 RGB images.</summary>
    public GrayscaleObservation(IEnv env, bool keepDim = false) : base(env, RgbSize(env), RgbSize(env) / 3)
    {
        var box = (Box)env.ObservationSpace;
        _space = keepDim ? ImageSpaces.Of(box.Shape[0], box.Shape[1], 1) : ImageSpaces.Of(box.Shape[0], box.Shape[1]);
    }

    private static int RgbSize(IEnv env)
    {
        var box = ImageSpaces.Require(env, nameof(GrayscaleObservation), 3);
        if (box.Shape[2] != 3) throw new ArgumentException($"GrayscaleObservation needs RGB images (H, W, 3); the space is {box}.");
        return box.EncodedSize;
    }

    /// <inheritdoc />
    public override Space ObservationSpace => _space;

    /// <inheritdoc />
    protected override void Transform(ReadOnlySpan<byte> input, Span<byte> output) => Convert(input, output);

    // The three products for every byte value, as NumPy computes them (uint8 × float64): looking them up gives the
    // same float64 sums as multiplying, without the conversions and multiplications per pixel.
    private static readonly double[] Red = Products(0.2125), Green = Products(0.7154), Blue = Products(0.0721);

    private static double[] Products(double weight) => Enumerable.Range(0, 256).Select(v => v * weight).ToArray();

    /// <summary>Luminance of each pixel of <paramref name="rgb"/> (3 values each) into <paramref name="gray"/>.</summary>
    public static void Convert(ReadOnlySpan<byte> rgb, Span<byte> gray)
    {
        if (rgb.Length != gray.Length * 3) throw new ArgumentException($"{gray.Length} gray pixels come from {gray.Length * 3} RGB values, not {rgb.Length}.", nameof(rgb));
        var (red, green, blue) = (Red, Green, Blue);
        for (int i = 0, j = 0; i < gray.Length; i++, j += 3)
            gray[i] = (byte)(red[rgb[j]] + green[rgb[j + 1]] + blue[rgb[j + 2]]); // NumPy sums the products left to right
    }
}
