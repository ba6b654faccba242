using ClusterEnv.Rendering;

namespace ClusterEnv.Envs.ClassicControl;

/// <summary>The frame both mountain-car envs draw (Gymnasium's <c>MountainCarEnv.render</c>): the hill, the car with its wheels, the flag.</summary>
internal static class MountainCarDrawing
{
    public const int Width = 600, Height = 400;
    private const int HillPoints = 100;
    private static readonly Rgb WheelColour = new(128, 128, 128), FlagColour = new(204, 204, 0);

    private static double HillHeight(double x) => Math.Sin(3 * x) * 0.45 + 0.55;

    public static void Draw(Canvas canvas, double pos, double minPosition, double maxPosition, double goalPosition)
    {
        double scale = Width / (maxPosition - minPosition);
        const double CarWidth = 40, CarHeight = 20, Clearance = 10;
        canvas.Fill(Rgb.White);

        // np.linspace(min, max, 100): i·step + start, the last point exactly max
        Span<(double X, double Y)> hill = stackalloc (double, double)[HillPoints];
        double step = (maxPosition - minPosition) / (HillPoints - 1);
        for (int i = 0; i < HillPoints; i++)
        {
            double x = i == HillPoints - 1 ? maxPosition : i * step + minPosition;
            hill[i] = ((x - minPosition) * scale, HillHeight(x) * scale);
        }
        canvas.AaLines(hill, Rgb.Black);

        double angle = Math.Cos(3 * pos), baseX = (pos - minPosition) * scale, baseY = Clearance + HillHeight(pos) * scale;
        double l = -CarWidth / 2, r = CarWidth / 2, t = CarHeight, b = 0;
        Span<(double X, double Y)> car = [(l, b), (l, t), (r, t), (r, b)];
        foreach (ref var p in car)
        {
            var (x, y) = Geometry.Rotate(p.X, p.Y, angle);
            p = (x + baseX, y + baseY);
        }
        canvas.AaPolygon(car, Rgb.Black);
        canvas.FilledPolygon(car, Rgb.Black);

        foreach (double wheelX in (ReadOnlySpan<double>)[CarWidth / 4, -CarWidth / 4])
        {
            var (x, y) = Geometry.Rotate(wheelX, 0, angle);
            int cx = (int)(x + baseX), cy = (int)(y + baseY);
            canvas.AaCircle(cx, cy, (int)(CarHeight / 2.5), WheelColour);
            canvas.FilledCircle(cx, cy, (int)(CarHeight / 2.5), WheelColour);
        }

        int flagX = (int)((goalPosition - minPosition) * scale), flagY1 = (int)(HillHeight(goalPosition) * scale), flagY2 = flagY1 + 50;
        canvas.VLine(flagX, flagY1, flagY2, Rgb.Black);
        ReadOnlySpan<(double, double)> flag = [(flagX, flagY2), (flagX, flagY2 - 10), (flagX + 25, flagY2 - 5)];
        canvas.AaPolygon(flag, FlagColour);
        canvas.FilledPolygon(flag, FlagColour);
    }
}
