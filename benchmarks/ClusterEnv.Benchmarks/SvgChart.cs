using System.Globalization;
using System.Text;

namespace ClusterEnv.Benchmarks;

/// <summary>Small, dependency-free SVG charts for benchmark reports: line charts and grouped bar charts.</summary>
public static class SvgChart
{
    private static readonly string[] Palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
    private const int W = 720, H = 440, Left = 70, Right = 170, Top = 40, Bottom = 55;

    private static string F(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);

    /// <summary>One line per series over a shared numeric x axis.</summary>
    public static string Lines(string title, string xLabel, string yLabel, IReadOnlyList<(string Name, IReadOnlyList<(double X, double Y)> Points)> series)
    {
        var all = series.SelectMany(s => s.Points).Where(p => double.IsFinite(p.Y)).ToArray();
        double x0 = 0, x1 = all.Length > 0 ? all.Max(p => p.X) : 1;
        double y0 = all.Length > 0 ? all.Min(p => p.Y) : 0, y1 = all.Length > 0 ? all.Max(p => p.Y) : 1;
        if (y1 - y0 < 1e-9) { y0 -= 1; y1 += 1; }
        var sb = Begin(title, xLabel, yLabel);
        Axes(sb, x0, x1, y0, y1, v => F(v));
        for (int i = 0; i < series.Count; i++)
        {
            var pts = series[i].Points.Where(p => double.IsFinite(p.Y)).Select(p => $"{F(X(p.X, x0, x1))},{F(Y(p.Y, y0, y1))}");
            sb.Append(CultureInfo.InvariantCulture, $"<polyline fill=\"none\" stroke=\"{Palette[i % Palette.Length]}\" stroke-width=\"1.8\" points=\"{string.Join(' ', pts)}\"/>\n");
            Legend(sb, i, series[i].Name);
        }
        return sb.Append("</svg>\n").ToString();
    }

    /// <summary>Grouped bars: for each category, one bar per series; optional log10 y axis.</summary>
    public static string Bars(string title, string xLabel, string yLabel, IReadOnlyList<string> categories,
        IReadOnlyList<(string Name, IReadOnlyList<double> Values)> series, bool logY = false)
    {
        Func<double, double> t = logY ? v => Math.Log10(Math.Max(v, 1)) : v => v;
        double y0 = 0, y1 = Math.Max(series.SelectMany(s => s.Values).Select(t).DefaultIfEmpty(1).Max() * 1.05, 1e-9);
        var sb = Begin(title, xLabel, yLabel);
        Axes(sb, 0, categories.Count, y0, y1, v => logY ? F(Math.Pow(10, v)) : F(v), xTicks: false);
        double slot = (W - Left - Right) / (double)categories.Count, bar = slot * 0.8 / series.Count;
        for (int c = 0; c < categories.Count; c++)
        {
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(Left + slot * (c + 0.5))}\" y=\"{H - Bottom + 18}\" text-anchor=\"middle\" font-size=\"12\">{categories[c]}</text>\n");
            for (int s = 0; s < series.Count; s++)
            {
                double v = t(series[s].Values[c]), x = Left + slot * c + slot * 0.1 + bar * s, y = Y(v, y0, y1);
                sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{F(x)}\" y=\"{F(y)}\" width=\"{F(bar * 0.95)}\" height=\"{F(H - Bottom - y)}\" fill=\"{Palette[s % Palette.Length]}\"><title>{series[s].Name} {categories[c]}: {F(series[s].Values[c])}</title></rect>\n");
            }
        }
        for (int s = 0; s < series.Count; s++) Legend(sb, s, series[s].Name);
        return sb.Append("</svg>\n").ToString();
    }

    private static double X(double v, double x0, double x1) => Left + (v - x0) / (x1 - x0) * (W - Left - Right);
    private static double Y(double v, double y0, double y1) => H - Bottom - (v - y0) / (y1 - y0) * (H - Top - Bottom);

    private static StringBuilder Begin(string title, string xLabel, string yLabel)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\">\n");
        sb.Append(CultureInfo.InvariantCulture, $"<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{W / 2}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{title}</text>\n");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{(Left + W - Right) / 2}\" y=\"{H - 12}\" text-anchor=\"middle\" font-size=\"13\">{xLabel}</text>\n");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"16\" y=\"{H / 2}\" text-anchor=\"middle\" font-size=\"13\" transform=\"rotate(-90 16 {H / 2})\">{yLabel}</text>\n");
        return sb;
    }

    private static void Axes(StringBuilder sb, double x0, double x1, double y0, double y1, Func<double, string> yFormat, bool xTicks = true)
    {
        sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{H - Bottom}\" x2=\"{W - Right}\" y2=\"{H - Bottom}\" stroke=\"black\"/>\n");
        sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{Top}\" x2=\"{Left}\" y2=\"{H - Bottom}\" stroke=\"black\"/>\n");
        for (int i = 0; i <= 5; i++)
        {
            double yv = y0 + (y1 - y0) * i / 5, y = Y(yv, y0, y1);
            sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{F(y)}\" x2=\"{W - Right}\" y2=\"{F(y)}\" stroke=\"#ddd\"/>\n");
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left - 6}\" y=\"{F(y + 4)}\" text-anchor=\"end\" font-size=\"11\">{yFormat(yv)}</text>\n");
            if (!xTicks) continue;
            double xv = x0 + (x1 - x0) * i / 5, x = X(xv, x0, x1);
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(x)}\" y=\"{H - Bottom + 16}\" text-anchor=\"middle\" font-size=\"11\">{(xv >= 1000 ? F(xv / 1000) + "k" : F(xv))}</text>\n");
        }
    }

    private static void Legend(StringBuilder sb, int i, string name)
    {
        double y = Top + 10 + i * 20;
        sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{W - Right + 14}\" y=\"{F(y - 9)}\" width=\"14\" height=\"10\" fill=\"{Palette[i % Palette.Length]}\"/>\n");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{W - Right + 34}\" y=\"{F(y)}\" font-size=\"12\">{name}</text>\n");
    }
}
