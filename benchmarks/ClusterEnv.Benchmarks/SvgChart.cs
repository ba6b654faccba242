using System.Globalization;
using System.Text;

namespace ClusterEnv.Benchmarks;

/// <summary>One line of a chart: its points, and optionally a band (for example the spread across seeds) drawn behind it.</summary>
/// <param name="Name">Legend text.</param>
/// <param name="Points">The line, in x order.</param>
/// <param name="Band">Lower and upper edge at each x (same x as <paramref name="Points"/>), or null for no band.</param>
public sealed record ChartSeries(string Name, IReadOnlyList<(double X, double Y)> Points, IReadOnlyList<(double X, double Lower, double Upper)>? Band = null);

/// <summary>
/// Small, dependency-free SVG charts for benchmark reports: line charts with bands and grouped bar charts. Ticks fall
/// on round values (1, 2, 2.5 or 5 × 10ⁿ; powers of ten on a log axis); each series has its own colour (the
/// Okabe–Ito colour-blind-safe palette), dash pattern and marker, with the markers of different series at different
/// x positions, so lines that coincide stay distinguishable.
/// </summary>
public static class SvgChart
{
    private static readonly string[] Palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999"];
    private static readonly string[] Dashes = ["", "7 3", "2 2", "9 3 2 3", "4 4", "1 3", "12 4", "5 2 1 2"];
    private const int W = 820, H = 470, Left = 78, Right = 250, Top = 54, Bottom = 58;
    private const int MarkersPerLine = 8;

    private static string F(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);

    /// <summary>One line per series over a shared numeric x axis, each with its band when it has one.</summary>
    public static string Lines(string title, string xLabel, string yLabel, IReadOnlyList<ChartSeries> series, double? yMin = null, double? yMax = null)
    {
        var xAxis = XAxis(series);
        var yAxis = YAxis(series, logY: false, yMin, yMax);
        var sb = Begin(title, xLabel, W, H);
        YLabel(sb, yLabel, Top, H - Bottom);
        DrawPanel(sb, series, xAxis, yAxis, Top, H - Bottom, xTickLabels: true, markers: true, panel: 0);
        for (int i = 0; i < series.Count; i++) LegendEntry(sb, i, series[i].Name, line: true, band: series[i].Band is { Count: > 1 });
        return sb.Append("</svg>\n").ToString();
    }

    /// <summary>
    /// Panels stacked over one shared x axis, each with its own y axis (linear, or log10 when asked): several metrics
    /// of one run over the same steps, such as the anatomy of a collapse.
    /// </summary>
    public static string Panels(string title, string xLabel, IReadOnlyList<(string YLabel, IReadOnlyList<ChartSeries> Series, bool LogY)> panels)
    {
        const int panelHeight = 118, gap = 14;
        int height = Top + panels.Count * (panelHeight + gap) - gap + Bottom;
        var xAxis = XAxis(panels.SelectMany(p => p.Series).ToArray());
        var sb = Begin(title, xLabel, W, height);
        for (int i = 0; i < panels.Count; i++)
        {
            double top = Top + i * (panelHeight + gap), bottom = top + panelHeight;
            var yAxis = YAxis(panels[i].Series, panels[i].LogY, null, null);
            DrawPanel(sb, panels[i].Series, xAxis, yAxis, top, bottom, xTickLabels: i == panels.Count - 1, markers: false, panel: i + 1);
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{W - Right + 14}\" y=\"{F((top + bottom) / 2 + 4)}\" font-size=\"12\">{Escape(panels[i].YLabel)}{(panels[i].LogY ? " (log)" : "")}</text>\n");
        }
        return sb.Append("</svg>\n").ToString();
    }

    private static Axis XAxis(IReadOnlyList<ChartSeries> series)
    {
        var xs = series.SelectMany(s => s.Points.Select(p => p.X)).Where(double.IsFinite).ToArray();
        return xs.Length == 0 ? Axis.Linear(0, 1, widen: false) : Axis.Linear(xs.Min() > 0 && xs.Min() < 0.2 * xs.Max() ? 0 : xs.Min(), xs.Max(), widen: false);
    }

    private static Axis YAxis(IReadOnlyList<ChartSeries> series, bool logY, double? yMin, double? yMax)
    {
        var ys = series.SelectMany(s => s.Points.Select(p => p.Y).Concat(s.Band?.SelectMany(b => new[] { b.Lower, b.Upper }) ?? [])).Where(double.IsFinite).ToArray();
        if (logY)
        {
            var positive = ys.Where(y => y > 0).DefaultIfEmpty(1).ToArray();
            return Axis.Log(positive.Min(), positive.Max());
        }
        return Axis.Linear(yMin ?? (ys.Length > 0 ? ys.Min() : 0), yMax ?? (ys.Length > 0 ? ys.Max() : 1));
    }

    // One plot area between top and bottom: grid, ticks, bands, lines and (optionally) markers.
    private static void DrawPanel(StringBuilder sb, IReadOnlyList<ChartSeries> series, Axis xAxis, Axis yAxis, double top, double bottom, bool xTickLabels, bool markers, int panel)
    {
        double PY(double v) => bottom - yAxis.Fraction(v) * (bottom - top);
        Grid(sb, xAxis, yAxis, top, bottom, xTickLabels);
        sb.Append(CultureInfo.InvariantCulture, $"<clipPath id=\"plot{panel}\"><rect x=\"{Left}\" y=\"{F(top)}\" width=\"{W - Left - Right}\" height=\"{F(bottom - top)}\"/></clipPath>\n");
        for (int i = 0; i < series.Count; i++)
        {
            if (series[i].Band is not { Count: > 1 } band) continue;
            var edge = band.Where(b => double.IsFinite(b.Lower) && double.IsFinite(b.Upper)).ToArray();
            var outline = edge.Select(b => $"{F(PX(b.X, xAxis))},{F(PY(b.Upper))}").Concat(edge.Reverse().Select(b => $"{F(PX(b.X, xAxis))},{F(PY(b.Lower))}"));
            sb.Append(CultureInfo.InvariantCulture, $"<polygon clip-path=\"url(#plot{panel})\" fill=\"{Color(i)}\" fill-opacity=\"0.09\" stroke=\"none\" points=\"{string.Join(' ', outline)}\"/>\n");
        }
        for (int i = 0; i < series.Count; i++)
        {
            var pts = series[i].Points.Where(p => double.IsFinite(p.Y)).ToArray();
            string dash = Dashes[i % Dashes.Length] is { Length: > 0 } d ? $" stroke-dasharray=\"{d}\"" : "";
            sb.Append(CultureInfo.InvariantCulture, $"<polyline clip-path=\"url(#plot{panel})\" fill=\"none\" stroke=\"{Color(i)}\" stroke-width=\"{(markers ? 1.8 : 1.2)}\"{dash} points=\"{string.Join(' ', pts.Select(p => $"{F(PX(p.X, xAxis))},{F(PY(p.Y))}"))}\"/>\n");
            if (!markers) continue;
            // Markers at evenly spaced fractions of the x range, shifted per series so coinciding lines show each marker.
            for (int m = 0; m < MarkersPerLine && pts.Length > 0; m++)
            {
                double target = xAxis.Min + (xAxis.Max - xAxis.Min) * (m + 0.5 + 0.5 * i / Math.Max(series.Count, 1)) / MarkersPerLine;
                var p = pts.MinBy(q => Math.Abs(q.X - target));
                if (Math.Abs(p.X - target) > (xAxis.Max - xAxis.Min) / MarkersPerLine) continue;
                Marker(sb, i, PX(p.X, xAxis), PY(p.Y));
            }
        }
    }

    /// <summary>Grouped bars: for each category, one bar per series; optional log10 y axis (ticks at powers of ten).</summary>
    public static string Bars(string title, string xLabel, string yLabel, IReadOnlyList<string> categories,
        IReadOnlyList<(string Name, IReadOnlyList<double> Values)> series, bool logY = false)
    {
        var values = series.SelectMany(s => s.Values).Where(v => double.IsFinite(v)).DefaultIfEmpty(1).ToArray();
        var yAxis = logY ? Axis.Log(Math.Max(values.Where(v => v > 0).DefaultIfEmpty(1).Min(), 1e-12), Math.Max(values.Max(), 1e-12)) : Axis.Linear(Math.Min(0, values.Min()), values.Max());
        var sb = Begin(title, xLabel, W, H);
        YLabel(sb, yLabel, Top, H - Bottom);
        Grid(sb, null, yAxis, Top, H - Bottom, xTickLabels: false);
        double slot = (W - Left - Right) / (double)categories.Count, bar = slot * 0.8 / series.Count;
        double baseline = PY(logY ? yAxis.Min : Math.Max(yAxis.Min, 0), yAxis);
        for (int c = 0; c < categories.Count; c++)
        {
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(Left + slot * (c + 0.5))}\" y=\"{H - Bottom + 18}\" text-anchor=\"middle\" font-size=\"12\">{Escape(categories[c])}</text>\n");
            for (int s = 0; s < series.Count; s++)
            {
                double v = series[s].Values[c];
                if (!double.IsFinite(v) || (logY && v <= 0)) continue;
                double x = Left + slot * c + slot * 0.1 + bar * s, y = PY(v, yAxis);
                string hatch = s % 2 == 1 ? " stroke=\"white\" stroke-width=\"1\" stroke-dasharray=\"3 2\"" : "";
                sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{F(x)}\" y=\"{F(Math.Min(y, baseline))}\" width=\"{F(bar * 0.95)}\" height=\"{F(Math.Abs(baseline - y))}\" fill=\"{Color(s)}\"{hatch}><title>{Escape(series[s].Name)} {Escape(categories[c])}: {FormatValue(v)}</title></rect>\n");
                sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(x + bar * 0.475)}\" y=\"{F(Math.Min(y, baseline) - 3)}\" text-anchor=\"middle\" font-size=\"9\">{FormatValue(v)}</text>\n");
            }
        }
        for (int s = 0; s < series.Count; s++) LegendEntry(sb, s, series[s].Name, line: false, band: false);
        return sb.Append("</svg>\n").ToString();
    }

    /// <summary>A number as a chart label: up to three significant digits, k and M for thousands and millions.</summary>
    public static string FormatValue(double v)
    {
        double a = Math.Abs(v);
        if (a >= 1e6) return (v / 1e6).ToString("0.##", CultureInfo.InvariantCulture) + "M";
        if (a >= 1e4) return (v / 1e3).ToString("0.#", CultureInfo.InvariantCulture) + "k";
        if (a >= 100) return v.ToString("0", CultureInfo.InvariantCulture);
        if (a >= 10) return v.ToString("0.#", CultureInfo.InvariantCulture);
        if (a >= 0.01 || a == 0) return v.ToString("0.##", CultureInfo.InvariantCulture);
        return v.ToString("0.#e0", CultureInfo.InvariantCulture);
    }

    /// <summary>An axis: its range, round tick values, how ticks are written, and whether it is logarithmic.</summary>
    internal sealed record Axis(double Min, double Max, double[] Ticks, Func<double, string> Label, bool IsLog)
    {
        /// <summary>
        /// Ticks every 1, 2, 2.5 or 5 × 10ⁿ, about five of them; <paramref name="widen"/>: the range grows to the outer
        /// ticks (else it stays the data's, ticks inside it).
        /// </summary>
        public static Axis Linear(double lo, double hi, bool widen = true)
        {
            if (!(hi > lo)) { lo -= 1; hi += 1; }
            double step = NiceStep((hi - lo) / 5);
            double start = Math.Floor(lo / step + 1e-9) * step, end = Math.Ceiling(hi / step - 1e-9) * step;
            if (!widen) { start = Math.Ceiling(lo / step - 1e-9) * step; end = Math.Floor(hi / step + 1e-9) * step; }
            var ticks = new List<double>();
            for (double t = start; t <= end + step * 1e-6; t += step) ticks.Add(Math.Abs(t) < step * 1e-9 ? 0 : t);
            if (!widen) (start, end) = (lo, hi);
            int decimals = Math.Max(0, -(int)Math.Floor(Math.Log10(step) + 1e-9) + (IsQuarter(step) ? 1 : 0));
            bool thousands = step >= 1000 && ticks.All(t => Math.Abs(t) < 1e6 || step < 1e5);
            bool millions = step >= 1e5 && ticks.Any(t => Math.Abs(t) >= 1e6);
            string Label(double v) => millions ? (v / 1e6).ToString("0.##", CultureInfo.InvariantCulture) + (v == 0 ? "" : "M")
                : thousands ? (v / 1e3).ToString("0.#", CultureInfo.InvariantCulture) + (v == 0 ? "" : "k")
                : v.ToString("F" + decimals, CultureInfo.InvariantCulture);
            return new Axis(start, end, ticks.ToArray(), Label, IsLog: false);
        }

        /// <summary>A log10 axis from the power of ten at or below <paramref name="lo"/> to the one at or above <paramref name="hi"/>.</summary>
        public static Axis Log(double lo, double hi)
        {
            int a = (int)Math.Floor(Math.Log10(lo) + 1e-9), b = Math.Max((int)Math.Ceiling(Math.Log10(hi) - 1e-9), a + 1);
            return new Axis(Math.Pow(10, a), Math.Pow(10, b), Enumerable.Range(a, b - a + 1).Select(e => Math.Pow(10, e)).ToArray(), FormatValue, IsLog: true);
        }

        public double Fraction(double v) => IsLog ? (Math.Log10(Math.Max(v, Min)) - Math.Log10(Min)) / (Math.Log10(Max) - Math.Log10(Min)) : (v - Min) / (Max - Min);

        private static double NiceStep(double raw)
        {
            double mag = Math.Pow(10, Math.Floor(Math.Log10(raw))), norm = raw / mag;
            return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
        }

        private static bool IsQuarter(double step)
        {
            double mag = Math.Pow(10, Math.Floor(Math.Log10(step) + 1e-9));
            return Math.Abs(step / mag - 2.5) < 1e-9;
        }
    }

    private static double PX(double v, Axis a) => Left + a.Fraction(v) * (W - Left - Right);
    private static double PY(double v, Axis a) => H - Bottom - a.Fraction(v) * (H - Top - Bottom);
    private static string Color(int i) => Palette[i % Palette.Length];

    private static string Escape(string s) => s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;");

    private static StringBuilder Begin(string title, string xLabel, int width, int height)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\">\n");
        sb.Append(CultureInfo.InvariantCulture, $"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>\n");
        // A long title breaks at the space nearest its middle, into two lines.
        int cut = title.Length > 80 ? Enumerable.Range(0, title.Length).Where(i => title[i] == ' ').DefaultIfEmpty(-1).MinBy(i => Math.Abs(i - title.Length / 2)) : -1;
        string[] lines = cut > 0 ? [title[..cut], title[(cut + 1)..]] : [title];
        for (int i = 0; i < lines.Length; i++)
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{W / 2}\" y=\"{(lines.Length == 1 ? 28 : 20 + 18 * i)}\" text-anchor=\"middle\" font-size=\"14\">{Escape(lines[i])}</text>\n");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{(Left + W - Right) / 2}\" y=\"{height - 14}\" text-anchor=\"middle\" font-size=\"13\">{Escape(xLabel)}</text>\n");
        return sb;
    }

    private static void YLabel(StringBuilder sb, string yLabel, double top, double bottom) =>
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"18\" y=\"{F((top + bottom) / 2)}\" text-anchor=\"middle\" font-size=\"13\" transform=\"rotate(-90 18 {F((top + bottom) / 2)})\">{Escape(yLabel)}</text>\n");

    private static void Grid(StringBuilder sb, Axis? x, Axis y, double top, double bottom, bool xTickLabels)
    {
        double PY(double v) => bottom - y.Fraction(v) * (bottom - top);
        foreach (double t in y.Ticks)
        {
            double py = PY(t);
            sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{F(py)}\" x2=\"{W - Right}\" y2=\"{F(py)}\" stroke=\"#e3e3e3\"/>\n");
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left - 6}\" y=\"{F(py + 4)}\" text-anchor=\"end\" font-size=\"11\">{y.Label(t)}</text>\n");
        }
        if (x is not null)
            foreach (double t in x.Ticks)
            {
                double px = PX(t, x);
                sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{F(px)}\" y1=\"{F(top)}\" x2=\"{F(px)}\" y2=\"{F(bottom)}\" stroke=\"#f0f0f0\"/>\n");
                sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{F(px)}\" y1=\"{F(bottom)}\" x2=\"{F(px)}\" y2=\"{F(bottom + 4)}\" stroke=\"black\"/>\n");
                if (xTickLabels) sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(px)}\" y=\"{F(bottom + 17)}\" text-anchor=\"middle\" font-size=\"11\">{x.Label(t)}</text>\n");
            }
        sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{F(bottom)}\" x2=\"{W - Right}\" y2=\"{F(bottom)}\" stroke=\"black\"/>\n");
        sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{F(top)}\" x2=\"{Left}\" y2=\"{F(bottom)}\" stroke=\"black\"/>\n");
    }

    private static void Marker(StringBuilder sb, int i, double x, double y)
    {
        string c = Color(i), common = $"fill=\"{c}\" stroke=\"white\" stroke-width=\"0.8\"";
        switch (i % 6)
        {
            case 0: sb.Append(CultureInfo.InvariantCulture, $"<circle cx=\"{F(x)}\" cy=\"{F(y)}\" r=\"3.6\" {common}/>\n"); break;
            case 1: sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{F(x - 3.3)}\" y=\"{F(y - 3.3)}\" width=\"6.6\" height=\"6.6\" {common}/>\n"); break;
            case 2: sb.Append(CultureInfo.InvariantCulture, $"<polygon points=\"{F(x)},{F(y - 4.4)} {F(x + 4)},{F(y + 3)} {F(x - 4)},{F(y + 3)}\" {common}/>\n"); break;
            case 3: sb.Append(CultureInfo.InvariantCulture, $"<polygon points=\"{F(x)},{F(y - 4.5)} {F(x + 4.5)},{F(y)} {F(x)},{F(y + 4.5)} {F(x - 4.5)},{F(y)}\" {common}/>\n"); break;
            case 4: sb.Append(CultureInfo.InvariantCulture, $"<polygon points=\"{F(x)},{F(y + 4.4)} {F(x + 4)},{F(y - 3)} {F(x - 4)},{F(y - 3)}\" {common}/>\n"); break;
            default: sb.Append(CultureInfo.InvariantCulture, $"<path d=\"M{F(x - 3.5)},{F(y - 3.5)} L{F(x + 3.5)},{F(y + 3.5)} M{F(x - 3.5)},{F(y + 3.5)} L{F(x + 3.5)},{F(y - 3.5)}\" stroke=\"{c}\" stroke-width=\"2\"/>\n"); break;
        }
    }

    private static void LegendEntry(StringBuilder sb, int i, string name, bool line, bool band)
    {
        double y = Top + 10 + i * 22, x = W - Right + 14;
        if (line)
        {
            if (band) sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{F(x)}\" y=\"{F(y - 9)}\" width=\"30\" height=\"12\" fill=\"{Color(i)}\" fill-opacity=\"0.14\"/>\n");
            string dash = Dashes[i % Dashes.Length] is { Length: > 0 } d ? $" stroke-dasharray=\"{d}\"" : "";
            sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{F(x)}\" y1=\"{F(y - 3)}\" x2=\"{F(x + 30)}\" y2=\"{F(y - 3)}\" stroke=\"{Color(i)}\" stroke-width=\"1.8\"{dash}/>\n");
            Marker(sb, i, x + 15, y - 3);
        }
        else sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{F(x + 8)}\" y=\"{F(y - 9)}\" width=\"14\" height=\"11\" fill=\"{Color(i)}\"/>\n");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(x + 38)}\" y=\"{F(y + 1)}\" font-size=\"12\">{Escape(name)}</text>\n");
    }
}
