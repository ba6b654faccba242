using System.Buffers.Binary;
using ClusterEnv.Learners.Metrics;
using ClusterEnv.Learners.Metrics.Protos;
using ClusterEnv.Learners.Ppo;

namespace ClusterEnv.Tests.Learners;

public class TensorBoardWriterTests
{
    // The slow formula: CRC-32C bit by bit with the reflected Castagnoli polynomial.
    private static uint SlowCrc32C(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        }
        return ~crc;
    }

    [Test]
    public void Crc32C_MatchesTheCheckValue_AndTheBitwiseFormula()
    {
        Assert.That(TensorBoardWriter.Crc32C("123456789"u8), Is.EqualTo(0xE3069283u), "the standard CRC-32C check value");
        var rng = new Random(1);
        foreach (int n in new[] { 0, 1, 7, 8, 9, 63, 1000 })
        {
            var data = new byte[n];
            rng.NextBytes(data);
            Assert.That(TensorBoardWriter.Crc32C(data), Is.EqualTo(SlowCrc32C(data)), $"{n} bytes");
        }
    }

    [Test]
    public void EventFile_ReadsBack_RecordByRecord_WithValidCrcs_AndEveryScalar()
    {
        string dir = Directory.CreateTempSubdirectory("clusterenv-tb-").FullName;
        try
        {
            var metrics = new PpoMetrics { Iteration = 3, GlobalStep = 1536, Sps = 51234.5, PolicyLoss = -0.0125, MeanKl = double.NaN };
            string path;
            using (var tb = new TensorBoardWriter(dir))
            {
                tb.AddScalar("charts/sps", 1000, step: 512);
                tb.AddScalars(metrics.Scalars(), metrics.GlobalStep);
                path = tb.Path;
            }
            Assert.That(Path.GetFileName(path), Does.StartWith("events.out.tfevents."));
            var events = ReadRecords(File.ReadAllBytes(path)).Select(Event.Parser.ParseFrom).ToList();
            Assert.That(events, Has.Count.EqualTo(3));
            Assert.That(events[0].FileVersion, Is.EqualTo("brain.Event:2"));
            Assert.That(events[0].WallTime, Is.EqualTo(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0).Within(60));
            Assert.That(events[1].Step, Is.EqualTo(512));
            Assert.That(events[1].Summary.Value.Single().Tag, Is.EqualTo("charts/sps"));
            Assert.That(events[1].Summary.Value.Single().SimpleValue, Is.EqualTo(1000f));
            var values = events[2].Summary.Value.ToDictionary(v => v.Tag, v => v.SimpleValue);
            Assert.That(events[2].Step, Is.EqualTo(1536));
            Assert.That(values.Keys, Is.EqualTo(metrics.Scalars().Select(s => s.Tag)), "every metric, in order");
            Assert.That(values["charts/SPS"], Is.EqualTo(51234.5f), "CleanRL's tag");
            Assert.That(values["losses/policy_loss"], Is.EqualTo(-0.0125f));
            Assert.That(values["charts/iteration"], Is.EqualTo(3f));
            Assert.That(float.IsNaN(values["aps/mean_kl"]), Is.True);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void MetricsLog_WritesOnePointPerInterval_PoolsTheEpisodesBetween_AndNeverAPointThatIsNotANumber()
    {
        string dir = Directory.CreateTempSubdirectory("clusterenv-log-").FullName;
        try
        {
            int lost = 0;
            string events;
            using (var log = new MetricsLog(dir, TimeSpan.FromHours(1), append: false, () => [("workers/workers_lost", lost)]))
            {
                for (int i = 1; i <= 100; i++)
                {
                    // Episodes end in updates 1 (one of return 10), 50 (two of mean 20) and 70 (one of 50); none in the last.
                    var (n, mean) = i switch { 1 => (1, 10.0), 50 => (2, 20.0), 70 => (1, 50.0), _ => (0, double.NaN) };
                    lost = i / 50;
                    log.Record(new PpoMetrics { Iteration = i, GlobalStep = 512 * i, Episodes = n, EpisodicReturn = mean, EpisodicLength = mean, MeanKl = double.NaN }.Scalars(), 512 * i);
                }
                Assert.That(log.Points, Is.EqualTo(1), "the first update at once, then nothing within the hour");
                events = log.EventsPath;
            }
            var rows = File.ReadAllLines(Path.Combine(dir, "metrics.csv"));
            Assert.That(rows, Has.Length.EqualTo(3), "a header, the first update, and the last one written on Dispose");
            var header = rows[0].Split(',');
            string Cell(int row, string column) => rows[row].Split(',')[Array.IndexOf(header, column)];
            Assert.That(Cell(2, "iteration"), Is.EqualTo("100"));
            Assert.That(Cell(2, "episodes"), Is.EqualTo("3"), "the three episodes that ended after the first point");
            Assert.That(Cell(2, "episodic_return"), Is.EqualTo("30"), "their mean: (2 × 20 + 50) / 3");
            Assert.That(Cell(2, "mean_kl"), Is.Empty, "not a number: an empty cell, not NaN");
            Assert.That(Cell(2, "workers_lost"), Is.EqualTo("2"), "the extra scalars, read when the point is written");
            var points = ReadRecords(File.ReadAllBytes(events)).Select(Event.Parser.ParseFrom).Skip(1).ToList();
            Assert.That(points.Select(e => e.Step), Is.EqualTo(new long[] { 512, 51200 }));
            Assert.That(points.SelectMany(e => e.Summary.Value).Where(v => !float.IsFinite(v.SimpleValue)), Is.Empty, "no NaN point in any plot");
            Assert.That(points[1].Summary.Value.Single(v => v.Tag == "charts/episodic_return").SimpleValue, Is.EqualTo(30f));

            using (var resumed = new MetricsLog(dir, TimeSpan.Zero, append: true))
                resumed.Record(new PpoMetrics { Iteration = 101, GlobalStep = 51712 }.Scalars(), 51712);
            Assert.That(File.ReadAllLines(Path.Combine(dir, "metrics.csv")).Length, Is.EqualTo(2), "other columns (no extra scalars): a new file, the old one kept aside, not mixed");
            using (var resumed = new MetricsLog(dir, TimeSpan.Zero, append: true))
                resumed.Record(new PpoMetrics { Iteration = 102, GlobalStep = 52224 }.Scalars(), 52224);
            var continued = File.ReadAllLines(Path.Combine(dir, "metrics.csv"));
            Assert.That(continued, Has.Length.EqualTo(3), "the same columns: continued after its last row, one header");
            Assert.That(Directory.GetFiles(dir, "metrics.before-*.csv"), Has.Length.EqualTo(1));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // TFRecord: uint64 length, masked CRC of the length, data, masked CRC of the data; checked independently here.
    private static List<byte[]> ReadRecords(byte[] file)
    {
        static uint Masked(ReadOnlySpan<byte> d)
        {
            uint c = SlowCrc32C(d);
            return ((c >> 15) | (c << 17)) + 0xa282ead8u;
        }
        var records = new List<byte[]>();
        int at = 0;
        while (at < file.Length)
        {
            ulong length = BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan(at));
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at + 8)), Is.EqualTo(Masked(file.AsSpan(at, 8))), $"length CRC of the record at {at}");
            var data = file.AsSpan(at + 12, (int)length);
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at + 12 + (int)length)), Is.EqualTo(Masked(data)), $"data CRC of the record at {at}");
            records.Add(data.ToArray());
            at += 12 + (int)length + 4;
        }
        Assert.That(at, Is.EqualTo(file.Length), "no trailing bytes");
        return records;
    }
}
