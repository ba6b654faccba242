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
            Assert.That(values["charts/sps"], Is.EqualTo(51234.5f));
            Assert.That(values["losses/policy_loss"], Is.EqualTo(-0.0125f));
            Assert.That(values["charts/iteration"], Is.EqualTo(3f));
            Assert.That(float.IsNaN(values["aps/mean_kl"]), Is.True);
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
