using System.Numerics;
using ClusterEnv.Envs;
using ClusterEnv.Spaces;

namespace ClusterEnv.Wrappers;

/// <summary>
/// Gymnasium's <c>ResizeObservation</c>: an image (H, W) or (H, W, C) resized to <c>shape</c> = (h, w) with OpenCV's
/// <c>INTER_AREA</c> (each output pixel the area-weighted mean of the input pixels it covers, in single precision,
/// rounded half to even), which is what Gymnasium calls. Shrinking only: INTER_AREA enlarges by bilinear
/// interpolation in OpenCV, which is not reproduced here.
/// </summary>
public sealed class ResizeObservation : ImageWrapper
{
    private readonly Box _space;
    private readonly AreaResize _resize;

    /// <summary>Wraps <paramref name="env"/>, whose observations must be uint8 images, resizing them to <paramref name="height"/> × <paramref name="width"/>.</summary>
    public ResizeObservation(IEnv env, int height, int width) : base(env, Checked(env, height, width).EncodedSize, height * width * Channels(env))
    {
        var box = (Box)env.ObservationSpace;
        int channels = Channels(env);
        _resize = new AreaResize(box.Shape[0], box.Shape[1], height, width, channels);
        _space = box.Shape.Count == 3 ? ImageSpaces.Of(height, width, channels) : ImageSpaces.Of(height, width);
    }

    private static Box Checked(IEnv env, int height, int width)
    {
        var box = ImageSpaces.Require(env, nameof(ResizeObservation), 2, 3);
        if (height <= 0 || width <= 0) throw new ArgumentOutOfRangeException(nameof(height), $"ResizeObservation's shape must be positive, not ({height}, {width}).");
        return box;
    }

    private static int Channels(IEnv env) => env.ObservationSpace.Shape.Count == 3 ? env.ObservationSpace.Shape[2] : 1;

    /// <inheritdoc />
    public override Space ObservationSpace => _space;

    /// <inheritdoc />
    protected override void Transform(ReadOnlySpan<byte> input, Span<byte> output) => _resize.Apply(input, output);
}

/// <summary>OpenCV's <c>resize(..., INTER_AREA)</c> for shrinking uint8 images held in floats; the tables are built once.</summary>
internal sealed class AreaResize
{
    private readonly int _srcH, _srcW, _dstH, _dstW, _channels;
    private readonly (int Dst, int Src, float Alpha)[] _xTab, _yTab;
    private readonly float[] _buf, _sum, _row;
    private readonly int[] _xStart; // _xTab entries of output column dx are _xStart[dx] .. _xStart[dx + 1] - 1
    private readonly int _fastX, _fastY; // whole-number scales: OpenCV's resizeAreaFast (block means), else 0

    public AreaResize(int srcH, int srcW, int dstH, int dstW, int channels)
    {
        if (dstH > srcH || dstW > srcW)
            throw new ArgumentException($"ResizeObservation shrinks images; ({srcH}, {srcW}) to ({dstH}, {dstW}) enlarges, which OpenCV's INTER_AREA does by bilinear interpolation (not implemented here).");
        (_srcH, _srcW, _dstH, _dstW, _channels) = (srcH, srcW, dstH, dstW, channels);
        double scaleX = 1.0 / ((double)dstW / srcW), scaleY = 1.0 / ((double)dstH / srcH);
        const double DblEpsilon = 2.220446049250313e-16;
        int ix = (int)Math.Round(scaleX), iy = (int)Math.Round(scaleY);
        if (Math.Abs(scaleX - ix) < DblEpsilon && Math.Abs(scaleY - iy) < DblEpsilon) (_fastX, _fastY) = (ix, iy);
        _xTab = Table(srcW, dstW, scaleX);
        _yTab = Table(srcH, dstH, scaleY);
        _buf = new float[dstW * channels];
        _sum = new float[dstW * channels];
        _row = new float[srcW * channels];
        _xStart = new int[dstW + 1];
        for (int k = 0, dx = 0; dx <= dstW; dx++)
        {
            while (k < _xTab.Length && _xTab[k].Dst < dx) k++;
            _xStart[dx] = k;
        }
    }

    // OpenCV's computeResizeAreaTab: for each output index, the input indices it covers with their weights.
    private static (int, int, float)[] Table(int src, int dst, double scale)
    {
        var tab = new List<(int, int, float)>(src * 2);
        for (int d = 0; d < dst; d++)
        {
            double f1 = d * scale, f2 = f1 + scale, cell = Math.Min(scale, src - f1);
            int s1 = (int)Math.Ceiling(f1), s2 = (int)Math.Floor(f2);
            s2 = Math.Min(s2, src - 1);
            s1 = Math.Min(s1, s2);
            if (s1 - f1 > 1e-3) tab.Add((d, s1 - 1, (float)((s1 - f1) / cell)));
            for (int s = s1; s < s2; s++) tab.Add((d, s, (float)(1.0 / cell)));
            if (f2 - s2 > 1e-3) tab.Add((d, s2, (float)(Math.Min(Math.Min(f2 - s2, 1.0), cell) / cell)));
        }
        return tab.ToArray();
    }

    public void Apply<TIn, TOut>(ReadOnlySpan<TIn> src, Span<TOut> dst) where TIn : unmanaged, INumberBase<TIn> where TOut : unmanaged, INumberBase<TOut>
    {
        int cn = _channels, rowLen = _dstW * cn;
        if (src.Length != _srcH * _srcW * cn || dst.Length != _dstH * rowLen)
            throw new ArgumentException($"Resizing ({_srcH}, {_srcW}, {cn}) to ({_dstH}, {_dstW}, {cn}) takes {_srcH * _srcW * cn} values to {_dstH * rowLen}; got {src.Length} and {dst.Length}.");
        if (_fastX > 0)
        {
            BlockMeans(src, dst);
            return;
        }
        var buf = _buf.AsSpan();
        var sum = _sum.AsSpan();
        sum.Clear();
        int prevDy = 0;
        var rowF = _row.AsSpan();
        var xTab = _xTab.AsSpan();
        foreach (var (dy, sy, beta) in _yTab)
        {
            // The horizontal pass of source row sy: each output column sums its inputs in table order from 0, as OpenCV's
            // buf[dx] += S[sx]·alpha does, but in a register (the same float operations in the same order).
            var row = src.Slice(sy * _srcW * cn, _srcW * cn);
            for (int i = 0; i < rowF.Length; i++) rowF[i] = float.CreateTruncating(row[i]);
            for (int dx = 0; dx < _dstW; dx++)
            {
                int from = _xStart[dx], to = _xStart[dx + 1];
                for (int c = 0; c < cn; c++)
                {
                    float acc = 0f;
                    for (int k = from; k < to; k++) acc += rowF[xTab[k].Src * cn + c] * xTab[k].Alpha;
                    buf[dx * cn + c] = acc;
                }
            }
            if (dy != prevDy)
            {
                var d = dst.Slice(prevDy * rowLen, rowLen);
                for (int i = 0; i < rowLen; i++)
                {
                    d[i] = TOut.CreateTruncating(SaturateRound(sum[i]));
                    sum[i] = beta * buf[i];
                }
                prevDy = dy;
            }
            else
                for (int i = 0; i < rowLen; i++) sum[i] += beta * buf[i];
        }
        var last = dst.Slice(prevDy * rowLen, rowLen);
        for (int i = 0; i < rowLen; i++) last[i] = TOut.CreateTruncating(SaturateRound(sum[i]));
    }

    // OpenCV's resizeAreaFast: the mean of each fx × fy block; 2 × 2 rounds half up (its SIMD kernel adds 2 and shifts),
    // other sizes multiply the integer sum by the float 1/area and round half to even.
    private void BlockMeans<TIn, TOut>(ReadOnlySpan<TIn> src, Span<TOut> dst) where TIn : unmanaged, INumberBase<TIn> where TOut : unmanaged, INumberBase<TOut>
    {
        int cn = _channels, area = _fastX * _fastY;
        float inv = 1f / area;
        bool twoByTwo = _fastX == 2 && _fastY == 2;
        for (int dy = 0; dy < _dstH; dy++)
            for (int dx = 0; dx < _dstW; dx++)
                for (int c = 0; c < cn; c++)
                {
                    int sum = 0;
                    for (int ky = 0; ky < _fastY; ky++)
                    {
                        var row = src.Slice((dy * _fastY + ky) * _srcW * cn, _srcW * cn);
                        for (int kx = 0; kx < _fastX; kx++) sum += int.CreateTruncating(row[(dx * _fastX + kx) * cn + c]);
                    }
                    dst[(dy * _dstW + dx) * cn + c] = TOut.CreateTruncating(twoByTwo ? (sum + 2) >> 2 : SaturateRound(sum * inv));
                }
    }

    // saturate_cast<uchar>(float): cvRound (half to even), clamped to 0..255.
    private static float SaturateRound(float v) => Math.Clamp(MathF.Round(v, MidpointRounding.ToEven), 0f, 255f);
}
