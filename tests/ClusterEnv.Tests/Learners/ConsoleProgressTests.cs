using ClusterEnv.Learners.Metrics;

namespace ClusterEnv.Tests.Learners;

public class ConsoleProgressTests
{
    [Test]
    public void Format_ShowsStepsOfTotal_Sps_AndAnEta()
    {
        Assert.That(ConsoleProgress.Format(25_000, 100_000, 1000, "mean-20 12.5"),
            Is.EqualTo("step 25,000/100,000 (25.0%)  SPS 1,000  ETA 1:15  mean-20 12.5"));
        Assert.That(ConsoleProgress.Format(10, 0, 5, null), Is.EqualTo("step 10  SPS 5"), "no total, no percentage or ETA");
        Assert.That(ConsoleProgress.Format(0, 10_000_000, 1000, null), Does.Contain("ETA 2:46:40"));
    }

    [Test]
    public void Redirected_WritesPlainLines_NoCarriageReturns_AndTheLastStateOnComplete()
    {
        var w = new StringWriter();
        var p = new ConsoleProgress(w, inPlace: false, plainInterval: TimeSpan.FromHours(1));
        for (long s = 1; s <= 5; s++) p.Report(s * 100, 1000, 50);
        p.Complete();
        var lines = w.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
        Assert.That(w.ToString(), Does.Not.Contain("\r"));
        Assert.That(lines, Has.Length.EqualTo(2), "the first report, then the last one when the run completes");
        Assert.That(lines[0], Does.StartWith("step 100/1,000"));
        Assert.That(lines[1], Does.StartWith("step 500/1,000"));
    }

    [Test]
    public void OnATerminal_RewritesOneLineInPlace_AndEndsItOnComplete()
    {
        var w = new StringWriter();
        var p = new ConsoleProgress(w, inPlace: true, plainInterval: TimeSpan.FromHours(1));
        p.Report(100, 1000, 50, "a much longer detail text");
        p.Report(1000, 1000, 50); // the end is always written
        p.Complete();
        string text = w.ToString();
        Assert.That(text.Count(c => c == '\r'), Is.EqualTo(2));
        Assert.That(text.Split('\r')[2], Does.StartWith("step 1,000/1,000").And.EndWith(Environment.NewLine));
        Assert.That(text.Split('\r')[2].TrimEnd().Length, Is.LessThan(text.Split('\r')[1].Length), "the shorter line blanks out the rest of the longer one");
        Assert.That(text.Split('\r')[2].Length - Environment.NewLine.Length, Is.EqualTo(text.Split('\r')[1].Length));
    }
}
