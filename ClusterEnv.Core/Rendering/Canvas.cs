namespace ClusterEnv.Rendering;

/// <summary>
/// An RGB drawing surface with the primitives Gymnasium's classic-control renderers call, reproducing what pygame 2.1
/// draws with them: <c>gfxdraw</c> (SDL_gfx: Wu anti-aliased lines and ellipses blended with 8-bit alpha, scan-line
/// filled polygons with 16.16 fixed-point edges, midpoint filled circles) and <c>pygame.draw</c>'s <c>line</c> and
/// <c>aalines</c>. Coordinates are pygame's: x right, y down, integers truncated as <c>int(x)</c> does in Python.
/// The classic-control envs draw with y up and flip at the end (<see cref="CopyFlippedTo"/>), as Gymnasium does.
/// </summary>
/// <remarks>Re-used across frames: nothing here allocates once the canvas exists.</remarks>
internal sealed class Canvas
{
    private readonly byte[] _rgb;

    public Canvas(int width, int height)
    {
        if (width <= 0 || height <= 0 || width > short.MaxValue || height > short.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(width), $"A canvas is 1..{short.MaxValue} pixels on each side, not {width}×{height}.");
        Width = width;
        Height = height;
        _rgb = new byte[width * height * 3];
    }

    public int Width { get; }

    public int Height { get; }

    /// <summary>The pixels, row-major, three bytes (R, G, B) each, in drawing order (not yet flipped).</summary>
    public ReadOnlySpan<byte> Pixels => _rgb;

    /// <summary>Fills the whole canvas with one colour (pygame's <c>Surface.fill</c>).</summary>
    public void Fill(Rgb c)
    {
        for (int i = 0; i < _rgb.Length; i += 3)
        {
            _rgb[i] = c.R;
            _rgb[i + 1] = c.G;
            _rgb[i + 2] = c.B;
        }
    }

    /// <summary>Writes the canvas upside down (pygame's <c>transform.flip(surf, False, True)</c>) into <paramref name="frame"/> (height × width × 3).</summary>
    public void CopyFlippedTo(Span<byte> frame)
    {
        int row = Width * 3;
        if (frame.Length != _rgb.Length) throw new ArgumentException($"A {Height}×{Width} RGB frame takes {_rgb.Length} bytes, not {frame.Length}.", nameof(frame));
        for (int y = 0; y < Height; y++) _rgb.AsSpan(y * row, row).CopyTo(frame.Slice((Height - 1 - y) * row, row));
    }

    /// <summary>The colour at (x, y) (tests).</summary>
    public Rgb this[int x, int y] => new(_rgb[(y * Width + x) * 3], _rgb[(y * Width + x) * 3 + 1], _rgb[(y * Width + x) * 3 + 2]);

    // ---- pixels -------------------------------------------------------------------------------------------------

    /// <summary>SDL_gfx's <c>pixelColor</c> with alpha <paramref name="alpha"/>: an opaque write at 255, else each channel moves by <c>(src − dst)·α &gt;&gt; 8</c>.</summary>
    private void Put(int x, int y, Rgb c, int alpha)
    {
        if ((uint)x >= (uint)Width || (uint)y >= (uint)Height) return;
        int i = (y * Width + x) * 3;
        if (alpha == 255)
        {
            _rgb[i] = c.R;
            _rgb[i + 1] = c.G;
            _rgb[i + 2] = c.B;
            return;
        }
        _rgb[i] = (byte)(_rgb[i] + ((c.R - _rgb[i]) * alpha >> 8));
        _rgb[i + 1] = (byte)(_rgb[i + 1] + ((c.G - _rgb[i + 1]) * alpha >> 8));
        _rgb[i + 2] = (byte)(_rgb[i + 2] + ((c.B - _rgb[i + 2]) * alpha >> 8));
    }

    /// <summary>SDL_gfx's <c>pixelColorWeight</c> for an opaque colour: alpha <c>255·w &gt;&gt; 8</c> (so full weight is 254, not 255).</summary>
    private void PutWeighted(int x, int y, Rgb c, int weight) => Put(x, y, c, 255 * weight >> 8);

    // ---- gfxdraw ------------------------------------------------------------------------------------------------

    /// <summary><c>gfxdraw.hline</c>: pixels x1..x2 (either order, both included) of row y, clipped.</summary>
    public void HLine(int x1, int x2, int y, Rgb c)
    {
        if (x1 > x2) (x1, x2) = (x2, x1);
        if (x2 < 0 || x1 >= Width || y < 0 || y >= Height) return;
        x1 = Math.Max(x1, 0);
        x2 = Math.Min(x2, Width - 1);
        for (int x = x1; x <= x2; x++) Put(x, y, c, 255);
    }

    /// <summary><c>gfxdraw.vline</c>: pixels y1..y2 (either order, both included) of column x, clipped.</summary>
    public void VLine(int x, int y1, int y2, Rgb c)
    {
        if (y1 > y2) (y1, y2) = (y2, y1);
        if (x < 0 || x >= Width || y2 < 0 || y1 >= Height) return;
        y1 = Math.Max(y1, 0);
        y2 = Math.Min(y2, Height - 1);
        for (int y = y1; y <= y2; y++) Put(x, y, c, 255);
    }

    /// <summary><c>gfxdraw.aapolygon</c>: the closed outline as Wu lines without their end points, vertices truncated to integers.</summary>
    public void AaPolygon(ReadOnlySpan<(double X, double Y)> points, Rgb c)
    {
        Span<short> xs = stackalloc short[points.Length], ys = stackalloc short[points.Length];
        Truncate(points, xs, ys);
        for (int i = 1; i < points.Length; i++) AaLine(xs[i - 1], ys[i - 1], xs[i], ys[i], c);
        AaLine(xs[^1], ys[^1], xs[0], ys[0], c);
    }

    /// <summary><c>gfxdraw.filled_polygon</c>: SDL_gfx's scan-line fill (16.16 fixed-point edge crossings, rounded inwards).</summary>
    public void FilledPolygon(ReadOnlySpan<(double X, double Y)> points, Rgb c)
    {
        int n = points.Length;
        Span<short> vx = stackalloc short[n], vy = stackalloc short[n];
        Span<int> ints = stackalloc int[n];
        Truncate(points, vx, vy);
        int miny = vy[0], maxy = vy[0];
        for (int i = 1; i < n; i++)
        {
            if (vy[i] < miny) miny = vy[i];
            else if (vy[i] > maxy) maxy = vy[i]; // SDL_gfx's else-if, kept: it decides the last scan line
        }
        for (int y = miny; y <= maxy; y++)
        {
            int count = 0;
            for (int i = 0; i < n; i++)
            {
                int ind1 = i == 0 ? n - 1 : i - 1, ind2 = i;
                int y1 = vy[ind1], y2 = vy[ind2], x1, x2;
                if (y1 < y2) { x1 = vx[ind1]; x2 = vx[ind2]; }
                else if (y1 > y2) { y2 = vy[ind1]; y1 = vy[ind2]; x2 = vx[ind1]; x1 = vx[ind2]; }
                else continue;
                if ((y >= y1 && y < y2) || (y == maxy && y > y1 && y <= y2))
                    ints[count++] = unchecked(65536 * (y - y1) / (y2 - y1) * (x2 - x1) + 65536 * x1);
            }
            ints[..count].Sort();
            for (int i = 0; i + 1 < count; i += 2)
            {
                int xa = ints[i] + 1, xb = ints[i + 1] - 1;
                xa = (xa >> 16) + ((xa & 32768) >> 15);
                xb = (xb >> 16) + ((xb & 32768) >> 15);
                HLine((short)xa, (short)xb, y, c);
            }
        }
    }

    /// <summary><c>gfxdraw.filled_circle</c>: SDL_gfx's midpoint circle filled with horizontal spans.</summary>
    public void FilledCircle(int x, int y, int rad, Rgb c)
    {
        if (rad < 0) return;
        if (rad == 0) { Put(x, y, c, 255); return; }
        if (x + rad < 0 || x - rad >= Width || y + rad < 0 || y - rad >= Height) return;
        int cx = 0, cy = rad, ocx = -1, ocy = -1, df = 1 - rad, dE = 3, dSE = -2 * rad + 5;
        do
        {
            if (ocy != cy)
            {
                if (cy > 0)
                {
                    HLine(x - cx, x + cx, y + cy, c);
                    HLine(x - cx, x + cx, y - cy, c);
                }
                else HLine(x - cx, x + cx, y, c);
                ocy = cy;
            }
            if (ocx != cx)
            {
                if (cx != cy)
                {
                    if (cx > 0)
                    {
                        HLine(x - cy, x + cy, y - cx, c);
                        HLine(x - cy, x + cy, y + cx, c);
                    }
                    else HLine(x - cy, x + cy, y, c);
                }
                ocx = cx;
            }
            if (df < 0) { df += dE; dE += 2; dSE += 2; }
            else { df += dSE; dE += 2; dSE += 4; cy--; }
            cx++;
        } while (cx <= cy);
    }

    /// <summary><c>gfxdraw.aacircle</c>: SDL_gfx's anti-aliased ellipse with equal radii.</summary>
    public void AaCircle(int x, int y, int rad, Rgb c) => AaEllipse(x, y, rad, rad, c);

    private void AaEllipse(int x, int y, int rx, int ry, Rgb c)
    {
        if (rx < 0 || ry < 0) return;
        if (rx == 0) { VLine(x, y - ry, y + ry, c); return; }
        if (ry == 0) { HLine(x - rx, x + rx, y, c); return; }
        if (x + rx < 0 || x - rx >= Width || y + ry < 0 || y - ry >= Height) return;
        int a2 = rx * rx, b2 = ry * ry, ds = 2 * a2, dt = 2 * b2, xc2 = 2 * x, yc2 = 2 * y;
        double sab = Math.Sqrt(a2 + b2);
        int dxt = (short)Math.Round(a2 / sab, MidpointRounding.ToEven);
        int t = 0, s = -2 * a2 * ry, d = 0, xp = x, yp = y - ry, xs, ys;
        Put(xp, yp, c, 255);
        Put(xc2 - xp, yp, c, 255);
        Put(xp, yc2 - yp, c, 255);
        Put(xc2 - xp, yc2 - yp, c, 255);
        for (int i = 1; i <= dxt; i++)
        {
            xp--;
            d += t - b2;
            if (d >= 0) ys = yp - 1;
            else if (d - s - a2 > 0)
            {
                if (2 * d - s - a2 >= 0) ys = yp + 1;
                else { ys = yp; yp++; d -= s + a2; s += ds; }
            }
            else { yp++; ys = yp + 1; d -= s + a2; s += ds; }
            t -= dt;
            int weight = Weight(d, s), iweight = 255 - weight;
            int xx = xc2 - xp;
            PutWeighted(xp, yp, c, iweight);
            PutWeighted(xx, yp, c, iweight);
            PutWeighted(xp, ys, c, weight);
            PutWeighted(xx, ys, c, weight);
            int yy = yc2 - yp;
            PutWeighted(xp, yy, c, iweight);
            PutWeighted(xx, yy, c, iweight);
            yy = yc2 - ys;
            PutWeighted(xp, yy, c, weight);
            PutWeighted(xx, yy, c, weight);
        }
        int dyt = (short)Math.Round(b2 / sab, MidpointRounding.ToEven);
        for (int i = 1; i <= dyt; i++)
        {
            yp++;
            d -= s + a2;
            if (d <= 0) xs = xp + 1;
            else if (d + t - b2 < 0)
            {
                if (2 * d + t - b2 <= 0) xs = xp - 1;
                else { xs = xp; xp--; d += t - b2; t -= dt; }
            }
            else { xp--; xs = xp - 1; d += t - b2; t -= dt; }
            s += ds;
            int weight = Weight(d, t), iweight = 255 - weight;
            int xx = xc2 - xp, yy = yc2 - yp;
            PutWeighted(xp, yp, c, iweight);
            PutWeighted(xx, yp, c, iweight);
            PutWeighted(xp, yy, c, iweight);
            PutWeighted(xx, yy, c, iweight);
            xx = xc2 - xs;
            PutWeighted(xs, yp, c, weight);
            PutWeighted(xx, yp, c, weight);
            PutWeighted(xs, yy, c, weight);
            PutWeighted(xx, yy, c, weight);
        }
    }

    /// <summary>The ellipse's coverage weight, as SDL_gfx computes it in single precision: <c>(Uint8)(min(|d|/|s|, 1)·255)</c>.</summary>
    private static int Weight(int d, int s)
    {
        float cp = s != 0 ? Math.Min((float)Math.Abs(d) / Math.Abs(s), 1f) : 1f;
        return (byte)(cp * 255);
    }

    /// <summary>SDL_gfx's <c>_aalineColor</c> without the end point (what <c>aapolygon</c> draws per edge).</summary>
    private void AaLine(short x1, short y1, short x2, short y2, Rgb c)
    {
        if (!ClipLine(ref x1, ref y1, ref x2, ref y2)) return;
        int xx0 = x1, yy0 = y1, xx1 = x2, yy1 = y2;
        if (yy0 > yy1) { (yy0, yy1) = (yy1, yy0); (xx0, xx1) = (xx1, xx0); }
        int dx = xx1 - xx0, dy = yy1 - yy0;
        if (dx == 0)
        {
            if (dy > 0) VLine(x1, yy0, yy0 + dy, c);
            else Put(x1, y1, c, 255);
            return;
        }
        if (dy == 0)
        {
            HLine(xx0, xx0 + dx, y1, c);
            return;
        }
        int xdir = 1;
        if (dx < 0) { xdir = -1; dx = -dx; }
        uint erracc = 0;
        Put(x1, y1, c, 255); // SDL_gfx starts at the first argument, even when it swapped the ends above
        if (dy > dx)
        {
            uint erradj = unchecked((uint)(((dx << 16) / dy) << 16));
            int x0pxdir = xx0 + xdir;
            while (--dy != 0)
            {
                uint before = erracc;
                erracc = unchecked(erracc + erradj);
                if (erracc <= before) { xx0 = x0pxdir; x0pxdir += xdir; }
                yy0++;
                int wgt = (int)(erracc >> 24) & 255;
                PutWeighted(xx0, yy0, c, 255 - wgt);
                PutWeighted(x0pxdir, yy0, c, wgt);
            }
        }
        else
        {
            uint erradj = unchecked((uint)(((dy << 16) / dx) << 16));
            int y0p1 = yy0 + 1;
            while (--dx != 0)
            {
                uint before = erracc;
                erracc = unchecked(erracc + erradj);
                if (erracc <= before) { yy0 = y0p1; y0p1++; }
                xx0 += xdir;
                int wgt = (int)(erracc >> 24) & 255;
                PutWeighted(xx0, yy0, c, 255 - wgt);
                PutWeighted(xx0, y0p1, c, wgt);
            }
        }
    }

    /// <summary>SDL_gfx's Cohen–Sutherland clip (single-precision slope, truncated); false when the line misses the canvas.</summary>
    private bool ClipLine(ref short x1, ref short y1, ref short x2, ref short y2)
    {
        const int Left = 1, Right = 2, Bottom = 4, Top = 8;
        int right = Width - 1, bottom = Height - 1;
        int Encode(int x, int y) => (x < 0 ? Left : x > right ? Right : 0) | (y < 0 ? Top : y > bottom ? Bottom : 0);
        while (true)
        {
            int code1 = Encode(x1, y1), code2 = Encode(x2, y2);
            if ((code1 | code2) == 0) return true;
            if ((code1 & code2) != 0) return false;
            if (code1 == 0)
            {
                (x1, x2) = (x2, x1);
                (y1, y2) = (y2, y1);
                (code1, code2) = (code2, code1);
            }
            float m = x2 != x1 ? (float)(y2 - y1) / (x2 - x1) : 1f;
            if ((code1 & Left) != 0) { y1 += (short)((0 - x1) * m); x1 = 0; }
            else if ((code1 & Right) != 0) { y1 += (short)((right - x1) * m); x1 = (short)right; }
            else if ((code1 & Bottom) != 0) { if (x2 != x1) x1 += (short)((bottom - y1) / m); y1 = (short)bottom; }
            else if ((code1 & Top) != 0) { if (x2 != x1) x1 += (short)((0 - y1) / m); y1 = 0; }
        }
    }

    private static void Truncate(ReadOnlySpan<(double X, double Y)> points, Span<short> xs, Span<short> ys)
    {
        if (points.Length < 3) throw new ArgumentException($"A polygon needs at least 3 points, not {points.Length}.", nameof(points));
        for (int i = 0; i < points.Length; i++)
        {
            xs[i] = unchecked((short)(long)points[i].X);
            ys[i] = unchecked((short)(long)points[i].Y);
        }
    }

    // ---- pygame.draw --------------------------------------------------------------------------------------------

    /// <summary><c>pygame.draw.line</c> of width 1 between integer-truncated points (Bresenham; horizontal and vertical runs clipped).</summary>
    public void Line(double fromX, double fromY, double toX, double toY, Rgb c)
    {
        int x1 = (int)fromX, y1 = (int)fromY, x2 = (int)toX, y2 = (int)toY;
        if (y1 == y2) { HLine(x1, x2, y1, c); return; }
        if (x1 == x2) { VLine(x1, y1, y2, c); return; }
        int dx = Math.Abs(x2 - x1), sx = x1 < x2 ? 1 : -1, dy = Math.Abs(y2 - y1), sy = y1 < y2 ? 1 : -1;
        int err = (dx > dy ? dx : -dy) / 2;
        while (true)
        {
            Put(x1, y1, c, 255);
            if (x1 == x2 && y1 == y2) break;
            int e2 = err;
            if (e2 > -dx) { err -= dy; x1 += sx; }
            if (e2 < dy) { err += dx; y1 += sy; }
        }
    }

    /// <summary><c>pygame.draw.aalines(closed=False)</c>: pygame's single-precision Xiaolin Wu segments, blended with the canvas.</summary>
    public void AaLines(ReadOnlySpan<(double X, double Y)> points, Rgb c)
    {
        for (int i = 1; i < points.Length; i++)
            AaSegment((float)points[i - 1].X, (float)points[i - 1].Y, (float)points[i].X, (float)points[i].Y, c);
    }

    private void AaSegment(float fromX, float fromY, float toX, float toY, Rgb c)
    {
        float dx = toX - fromX, dy = toY - fromY;
        if (Math.Abs((double)dx) < 0.0001 && Math.Abs((double)dy) < 0.0001)
        {
            Blend((int)Math.Floor(fromX + 0.5), (int)Math.Floor(fromY + 0.5), c, 1f);
            return;
        }
        float clipLeft = -1f, clipRight = clipLeft + Width + 1f, clipTop = -1f, clipBottom = clipTop + Height + 1f;
        bool steep = MathF.Abs(dx) < MathF.Abs(dy);
        if (steep)
        {
            (fromX, fromY) = (fromY, fromX);
            (toX, toY) = (toY, toX);
            (dx, dy) = (dy, dx);
            (clipLeft, clipTop) = (clipTop, clipLeft);
            (clipRight, clipBottom) = (clipBottom, clipRight);
        }
        if (dx < 0)
        {
            (fromX, toX) = (toX, fromX);
            (fromY, toY) = (toY, fromY);
            dx = -dx;
            dy = -dy;
        }
        if (toX <= clipLeft || fromX >= clipRight) return;
        float gradient = dy / dx;
        if (fromX < clipLeft) { fromY += gradient * (clipLeft - fromX); fromX = clipLeft; }
        if (toX > clipRight) { toY += gradient * (clipRight - toX); toX = clipRight; }
        if (gradient > 0f)
        {
            if (toY <= clipTop || fromY >= clipBottom) return;
            if (fromY < clipTop) { fromX += (clipTop - fromY) / gradient; fromY = clipTop; }
            if (toY > clipBottom) { toX += (clipBottom - toY) / gradient; toY = clipBottom; }
        }
        else
        {
            if (fromY <= clipTop || toY >= clipBottom) return;
            if (toY < clipTop) { toX += (clipTop - toY) / gradient; toY = clipTop; }
            if (fromY > clipBottom) { fromX += (clipBottom - fromY) / gradient; fromY = clipBottom; }
        }
        fromY += 1f;
        toY += 1f;
        int xStart = (int)fromX;
        float intersectY, yEnd = intersectY = fromY + gradient * (xStart - fromX);
        if (toX > clipLeft + 1f)
        {
            EndPoint(xStart, yEnd, 1 + xStart - fromX);
            intersectY += gradient;
            xStart++;
        }
        int xEnd = (int)MathF.Ceiling(toX);
        if (fromX < clipRight - 1f) EndPoint(xEnd, toY + gradient * (xEnd - toX), 1 - xEnd + toX);
        for (int x = xStart; x < xEnd; x++)
        {
            int y = (int)intersectY;
            float brightness = 1 - intersectY + y;
            Plot(x, y - 1, brightness);
            if (y < intersectY) Plot(x, y, 1 - brightness);
            intersectY += gradient;
        }

        void EndPoint(int along, float yEndpoint, float gap)
        {
            float brightness = yEndpoint - (int)yEndpoint;
            int across = (int)yEndpoint;
            if (across < yEndpoint) Plot(along, across, brightness * gap);
            Plot(along, across - 1, (1 - brightness) * gap);
        }

        void Plot(int along, int across, float brightness)
        {
            if (steep) Blend(across, along, c, brightness);
            else Blend(along, across, c, brightness);
        }
    }

    /// <summary>pygame's <c>get_antialiased_color</c> with blending, then <c>set_at</c>: <c>(Uint8)(b·src + (1 − b)·dst)</c> per channel.</summary>
    private void Blend(int x, int y, Rgb c, float brightness)
    {
        if ((uint)x >= (uint)Width || (uint)y >= (uint)Height) return;
        int i = (y * Width + x) * 3;
        _rgb[i] = (byte)(brightness * c.R + (1 - brightness) * _rgb[i]);
        _rgb[i + 1] = (byte)(brightness * c.G + (1 - brightness) * _rgb[i + 1]);
        _rgb[i + 2] = (byte)(brightness * c.B + (1 - brightness) * _rgb[i + 2]);
    }
}

/// <summary>An opaque colour.</summary>
internal readonly record struct Rgb(byte R, byte G, byte B)
{
    public static readonly Rgb White = new(255, 255, 255);
    public static readonly Rgb Black = new(0, 0, 0);
}
