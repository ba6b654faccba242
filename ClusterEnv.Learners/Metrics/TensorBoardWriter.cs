using System.Buffers.Binary;
using System.Numerics;
using ClusterEnv.Learners.Metrics.Protos;
using Google.Protobuf;

namespace ClusterEnv.Learners.Metrics;

/// <summary>
/// Writes scalars to a TensorBoard event file (<c>events.out.tfevents.&lt;time&gt;.&lt;host&gt;</c>) in a run folder,
/// so that <c>tensorboard --logdir runs</c> plots them. Records use TFRecord framing: the length (uint64), its masked
/// CRC-32C, the serialized <c>Event</c>, and the data's masked CRC-32C, all little-endian.
/// </summary>
/// <example>
/// <code>
/// using var tb = new TensorBoardWriter("runs/ppo-cartpole");
/// tb.AddScalar("charts/SPS", 52_000, step: 4096);
/// </code>
/// </example>
public sealed class TensorBoardWriter : IDisposable
{
    private readonly FileStream _file;
    private readonly DateTime _epoch = DateTime.UnixEpoch;

    /// <summary>Creates the folder if needed and a new event file in it.</summary>
    public TensorBoardWriter(string logDirectory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(logDirectory);
        Directory.CreateDirectory(logDirectory);
        double now = WallTime();
        // A second writer in the same folder, process and second (a resumed run) gets a numbered name of its own.
        string name = $"events.out.tfevents.{(long)now}.{Environment.MachineName}.{Environment.ProcessId}";
        for (int n = 1; ; n++)
        {
            Path = System.IO.Path.Combine(logDirectory, n == 1 ? name : $"{name}.{n}");
            try
            {
                _file = new FileStream(Path, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
                break;
            }
            catch (IOException) when (File.Exists(Path) && n < 1000) { }
        }
        Write(new Event { WallTime = now, FileVersion = "brain.Event:2" });
    }

    /// <summary>The event file's path.</summary>
    public string Path { get; private set; } = "";

    /// <summary>Appends one scalar (TensorBoard stores it as float32).</summary>
    public void AddScalar(string tag, double value, long step)
    {
        ArgumentException.ThrowIfNullOrEmpty(tag);
        var summary = new Summary();
        summary.Value.Add(new Summary.Types.Value { Tag = tag, SimpleValue = (float)value });
        Write(new Event { WallTime = WallTime(), Step = step, Summary = summary });
    }

    /// <summary>Appends several scalars of the same step as one event.</summary>
    public void AddScalars(IEnumerable<(string Tag, double Value)> scalars, long step)
    {
        var summary = new Summary();
        foreach (var (tag, value) in scalars) summary.Value.Add(new Summary.Types.Value { Tag = tag, SimpleValue = (float)value });
        Write(new Event { WallTime = WallTime(), Step = step, Summary = summary });
    }

    /// <summary>Pushes what was written to the file (TensorBoard reads it while the run goes on).</summary>
    public void Flush() => _file.Flush();

    /// <inheritdoc />
    public void Dispose() => _file.Dispose();

    private double WallTime() => (DateTime.UtcNow - _epoch).TotalSeconds;

    private void Write(Event e)
    {
        var data = e.ToByteArray();
        Span<byte> header = stackalloc byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(header, (ulong)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], MaskedCrc32C(header[..8]));
        Span<byte> footer = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(footer, MaskedCrc32C(data));
        _file.Write(header);
        _file.Write(data);
        _file.Write(footer);
    }

    /// <summary>CRC-32C (Castagnoli) of <paramref name="data"/>, as TFRecord uses it before masking.</summary>
    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        int i = 0;
        for (; i + 8 <= data.Length; i += 8) crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data[i..]));
        for (; i < data.Length; i++) crc = BitOperations.Crc32C(crc, data[i]);
        return ~crc;
    }

    /// <summary>TFRecord's masked CRC: rotate right by 15 and add a constant, so a CRC of data holding CRCs stays strong.</summary>
    public static uint MaskedCrc32C(ReadOnlySpan<byte> data)
    {
        uint crc = Crc32C(data);
        return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
    }
}
