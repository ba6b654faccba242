using System.Runtime.InteropServices;
using ClusterEnv.Envs;
using DType = ClusterEnv.Transport.Protos.DType;
using ClusterEnv.Vector;

namespace ClusterEnv.Transport;

/// <summary>
/// Hand-written protobuf encoding of the per-step messages (<c>HubMessage.step</c> and <c>WorkerMessage.step</c>),
/// byte-identical to Google.Protobuf's generated code but writing straight from and into the vector env's buffers,
/// so a step allocates nothing. Everything else on the wire uses the generated classes. Tensor bytes are copied
/// with <c>MemoryMarshal</c> casts, which assumes a little-endian host, as the wire format is.
/// </summary>
internal static class StepCodec
{
    /// <summary>Field numbers shared by <c>HubMessage</c> and <c>WorkerMessage</c>.</summary>
    public const int SeqField = 1;
    public const int StepField = 4;

    // ---- shared pieces ----

    private static int ShapeBytes(ReadOnlySpan<int> shape)
    {
        int s = 0;
        foreach (int d in shape) s += ProtoWire.VarintSize((ulong)(long)d);
        return s;
    }

    private static int TensorSize(DType dtype, ReadOnlySpan<int> shape, int dataLength)
    {
        int s = dtype == DType.Unspecified ? 0 : 1 + ProtoWire.VarintSize((ulong)dtype);
        int sb = ShapeBytes(shape);
        if (sb > 0) s += ProtoWire.FieldSize(sb);
        if (dataLength > 0) s += ProtoWire.FieldSize(dataLength);
        return s;
    }

    /// <summary>Writes a Tensor field's header and returns the span for its <paramref name="dataLength"/> data bytes.</summary>
    private static Span<byte> WriteTensor(ref ProtoWriter w, int field, DType dtype, scoped ReadOnlySpan<int> shape, int dataLength)
    {
        w.LengthPrefix(field, TensorSize(dtype, shape, dataLength));
        w.Varint(1, (ulong)dtype);
        int sb = ShapeBytes(shape);
        if (sb > 0)
        {
            w.LengthPrefix(2, sb);
            foreach (int d in shape) w.RawVarint((ulong)(long)d);
        }
        if (dataLength == 0) return default;
        w.LengthPrefix(3, dataLength);
        return w.Reserve(dataLength);
    }

    /// <summary>A decoded Tensor: its dtype, element count from the shape, first dimension and data bytes.</summary>
    private readonly ref struct TensorView(DType dtype, long count, long first, int rank, ReadOnlySpan<byte> data)
    {
        public readonly DType DType = dtype;
        public readonly long Count = count;
        public readonly long First = first;
        public readonly int Rank = rank;
        public readonly ReadOnlySpan<byte> Data = data;
    }

    private static TensorView ReadTensor(ReadOnlySpan<byte> body)
    {
        var r = new ProtoReader(body);
        DType dtype = DType.Unspecified;
        long count = 1, first = -1;
        int rank = 0;
        ReadOnlySpan<byte> data = default;
        while (r.TryReadTag(out int field, out int wt))
        {
            switch (field, wt)
            {
                case (1, ProtoWire.Varint): dtype = (DType)(int)r.ReadVarint(); break;
                case (2, ProtoWire.LengthDelimited):
                {
                    var packed = new ProtoReader(r.ReadLengthDelimited());
                    while (!packed.End) AddDim((long)packed.ReadVarint(), ref count, ref first, ref rank);
                    break;
                }
                case (2, ProtoWire.Varint): AddDim((long)r.ReadVarint(), ref count, ref first, ref rank); break;
                case (3, ProtoWire.LengthDelimited): data = r.ReadLengthDelimited(); break;
                default: r.Skip(wt); break;
            }
        }
        if (rank == 0) first = 1; // a scalar
        return new TensorView(dtype, count, first, rank, data);
    }

    private static void AddDim(long d, ref long count, ref long first, ref int rank)
    {
        if (d < 0 || d > int.MaxValue) throw new InvalidDataException($"Tensor dimension {d} is out of range.");
        if (rank == 0) first = d;
        count *= d;
        rank++;
        if (count > int.MaxValue) throw new InvalidDataException("Tensor has more than 2^31 elements.");
    }

    private static ReadOnlySpan<byte> Expect(TensorView t, string name, DType dtype, int count, int elementSize)
    {
        if (t.DType != dtype)
            throw new InvalidDataException($"Tensor '{name}' has dtype {t.DType}; expected {dtype}.");
        if (t.Count != count)
            throw new InvalidDataException($"Tensor '{name}' has {t.Count} elements (first dimension {t.First}); expected {count}.");
        if (t.Data.Length != count * elementSize)
            throw new InvalidDataException($"Tensor '{name}' carries {t.Data.Length} data bytes; {count} {dtype} elements need {count * elementSize}.");
        return t.Data;
    }

    private static void ReadBools(TensorView t, string name, Span<bool> dest)
    {
        var data = Expect(t, name, DType.Bool, dest.Length, 1);
        for (int i = 0; i < dest.Length; i++) dest[i] = data[i] != 0;
    }

    // ---- the top level of HubMessage / WorkerMessage ----

    /// <summary>The seq and the oneof body of a HubMessage or WorkerMessage, without decoding the body.</summary>
    public static void ReadEnvelope(ReadOnlySpan<byte> message, out ulong seq, out int bodyField, out ReadOnlySpan<byte> body)
    {
        var r = new ProtoReader(message);
        seq = 0;
        bodyField = 0;
        body = default;
        while (r.TryReadTag(out int field, out int wt))
        {
            if (field == SeqField && wt == ProtoWire.Varint) seq = r.ReadVarint();
            else if (wt == ProtoWire.LengthDelimited && field >= 2)
            {
                bodyField = field;
                body = r.ReadLengthDelimited();
            }
            else r.Skip(wt);
        }
    }

    private static void WriteEnvelope(ref ProtoWriter w, ulong seq, int bodyLength)
    {
        w.Varint(SeqField, seq);
        w.LengthPrefix(StepField, bodyLength);
    }

    private static int EnvelopeSize(ulong seq, int bodyLength) =>
        (seq == 0 ? 0 : 1 + ProtoWire.VarintSize(seq)) + ProtoWire.FieldSize(bodyLength);

    // ---- StepCommand (hub -> worker) ----

    /// <summary>Bytes of a HubMessage carrying a StepCommand with <paramref name="count"/> actions of <paramref name="shape"/>.</summary>
    public static int StepCommandSize(ulong seq, ReadOnlySpan<int> shape, int count, bool continuous)
    {
        int body = ProtoWire.FieldSize(TensorSize(continuous ? DType.Float32 : DType.Int64, shape, count * (continuous ? 4 : 8)));
        return EnvelopeSize(seq, body);
    }

    /// <summary>Writes a HubMessage{seq, step{actions}} with integer actions sent as INT64. Returns the bytes written.</summary>
    public static int WriteStepCommand(Span<byte> dest, ulong seq, ReadOnlySpan<int> shape, ReadOnlySpan<int> actions)
    {
        int tensor = TensorSize(DType.Int64, shape, actions.Length * 8);
        var w = new ProtoWriter(dest);
        WriteEnvelope(ref w, seq, ProtoWire.FieldSize(tensor));
        var data = WriteTensor(ref w, 1, DType.Int64, shape, actions.Length * 8);
        var longs = MemoryMarshal.Cast<byte, long>(data);
        for (int i = 0; i < actions.Length; i++) longs[i] = actions[i];
        return w.Position;
    }

    /// <summary>Writes a HubMessage{seq, step{actions}} with FLOAT32 actions. Returns the bytes written.</summary>
    public static int WriteStepCommand(Span<byte> dest, ulong seq, ReadOnlySpan<int> shape, ReadOnlySpan<float> actions)
    {
        int tensor = TensorSize(DType.Float32, shape, actions.Length * 4);
        var w = new ProtoWriter(dest);
        WriteEnvelope(ref w, seq, ProtoWire.FieldSize(tensor));
        MemoryMarshal.AsBytes(actions).CopyTo(WriteTensor(ref w, 1, DType.Float32, shape, actions.Length * 4));
        return w.Position;
    }

    /// <summary>
    /// Decodes a StepCommand body into the worker's action buffer: INT64 (or INT32) into <paramref name="ints"/>, FLOAT32
    /// into <paramref name="floats"/>; exactly one of the two is non-empty, matching the action space.
    /// </summary>
    public static void ReadStepCommand(ReadOnlySpan<byte> body, Span<int> ints, Span<float> floats)
    {
        var r = new ProtoReader(body);
        bool seen = false;
        while (r.TryReadTag(out int field, out int wt))
        {
            if (field != 1 || wt != ProtoWire.LengthDelimited) { r.Skip(wt); continue; }
            seen = true;
            var t = ReadTensor(r.ReadLengthDelimited());
            if (!floats.IsEmpty)
            {
                MemoryMarshal.Cast<byte, float>(Expect(t, "actions", DType.Float32, floats.Length, 4)).CopyTo(floats);
            }
            else if (t.DType == DType.Int32)
            {
                MemoryMarshal.Cast<byte, int>(Expect(t, "actions", DType.Int32, ints.Length, 4)).CopyTo(ints);
            }
            else
            {
                var longs = MemoryMarshal.Cast<byte, long>(Expect(t, "actions", DType.Int64, ints.Length, 8));
                for (int i = 0; i < ints.Length; i++)
                {
                    long v = longs[i];
                    if (v < int.MinValue || v > int.MaxValue) throw new InvalidDataException($"Action {v} at index {i} does not fit in an int.");
                    ints[i] = (int)v;
                }
            }
        }
        if (!seen) throw new InvalidDataException("StepCommand carries no actions tensor.");
    }

    // ---- StepResult (worker -> hub) ----

    private static int EpisodeStatsSize(int n) =>
        ProtoWire.FieldSize(TensorSize(DType.Bool, [n], n)) + ProtoWire.FieldSize(TensorSize(DType.Float64, [n], n * 8)) +
        ProtoWire.FieldSize(TensorSize(DType.Int64, [n], n * 8)) + ProtoWire.FieldSize(TensorSize(DType.Float64, [n], n * 8));

    private static void WriteEpisodeStats(ref ProtoWriter w, int field, EpisodeBatch batch)
    {
        int n = batch.Mask.Length;
        w.LengthPrefix(field, EpisodeStatsSize(n));
        MemoryMarshal.AsBytes(batch.Mask.AsSpan()).CopyTo(WriteTensor(ref w, 1, DType.Bool, [n], n));
        MemoryMarshal.AsBytes(batch.Return.AsSpan()).CopyTo(WriteTensor(ref w, 2, DType.Float64, [n], n * 8));
        var lengths = MemoryMarshal.Cast<byte, long>(WriteTensor(ref w, 3, DType.Int64, [n], n * 8));
        for (int i = 0; i < n; i++) lengths[i] = batch.Length[i];
        MemoryMarshal.AsBytes(batch.Seconds.AsSpan()).CopyTo(WriteTensor(ref w, 4, DType.Float64, [n], n * 8));
    }

    private static int StepResultBodySize(in VectorStepResult r, int n, int obsSize, DType obsType)
    {
        int e = ObservationCodec.ElementSize(obsType);
        int s = ProtoWire.FieldSize(TensorSize(obsType, [n, obsSize], n * obsSize * e))
              + ProtoWire.FieldSize(TensorSize(DType.Float64, [n], n * 8))
              + 2 * ProtoWire.FieldSize(TensorSize(DType.Bool, [n], n));
        if (r.Info.Episode.Any) s += ProtoWire.FieldSize(EpisodeStatsSize(n));
        if (Array.IndexOf(r.Info.HasFinalObservation, true) >= 0)
        {
            s += ProtoWire.FieldSize(TensorSize(DType.Bool, [n], n));
            s += ProtoWire.FieldSize(TensorSize(obsType, [n, obsSize], n * obsSize * e));
            if (r.Info.FinalEpisode.Any) s += ProtoWire.FieldSize(EpisodeStatsSize(n));
        }
        return s;
    }

    /// <summary>Bytes of a WorkerMessage{seq, step} for a vector env's step result (<paramref name="info"/>: encoded info entries, field 9; observations as <paramref name="obsType"/>, <see cref="ObservationCodec"/>).</summary>
    public static int StepResultSize(ulong seq, in VectorStepResult r, int obsSize, ReadOnlySpan<byte> info = default, DType obsType = DType.Float32) =>
        EnvelopeSize(seq, StepResultBodySize(r, r.Rewards.Length, obsSize, obsType) + info.Length);

    /// <summary>
    /// Writes a WorkerMessage{seq, step} from a vector env's step result. Returns the bytes written. Images sent as
    /// uint8 are copied from <paramref name="observationBytes"/> when given (the vector env's own bytes), else narrowed
    /// from the float32 observations.
    /// </summary>
    public static int WriteStepResult(Span<byte> dest, ulong seq, in VectorStepResult r, int obsSize, ReadOnlySpan<byte> info = default, DType obsType = DType.Float32,
        ReadOnlySpan<byte> observationBytes = default)
    {
        int n = r.Rewards.Length, e = ObservationCodec.ElementSize(obsType);
        var w = new ProtoWriter(dest);
        WriteEnvelope(ref w, seq, StepResultBodySize(r, n, obsSize, obsType) + info.Length);
        var observations = WriteTensor(ref w, 1, obsType, [n, obsSize], n * obsSize * e);
        if (obsType == DType.Uint8 && observationBytes.Length == n * obsSize) observationBytes.CopyTo(observations);
        else ObservationCodec.Encode(r.Observations.AsSpan(0, n * obsSize), obsType, observations);
        MemoryMarshal.AsBytes(r.Rewards.AsSpan()).CopyTo(WriteTensor(ref w, 2, DType.Float64, [n], n * 8));
        MemoryMarshal.AsBytes(r.Terminated.AsSpan()).CopyTo(WriteTensor(ref w, 3, DType.Bool, [n], n));
        MemoryMarshal.AsBytes(r.Truncated.AsSpan()).CopyTo(WriteTensor(ref w, 4, DType.Bool, [n], n));
        if (r.Info.Episode.Any) WriteEpisodeStats(ref w, 5, r.Info.Episode);
        if (Array.IndexOf(r.Info.HasFinalObservation, true) >= 0)
        {
            MemoryMarshal.AsBytes(r.Info.HasFinalObservation.AsSpan()).CopyTo(WriteTensor(ref w, 6, DType.Bool, [n], n));
            ObservationCodec.Encode(r.Info.FinalObservations.AsSpan(0, n * obsSize), obsType, WriteTensor(ref w, 7, obsType, [n, obsSize], n * obsSize * e));
            if (r.Info.FinalEpisode.Any) WriteEpisodeStats(ref w, 8, r.Info.FinalEpisode);
        }
        if (!info.IsEmpty)
        {
            info.CopyTo(dest[w.Position..]);
            return w.Position + info.Length;
        }
        return w.Position;
    }

    /// <summary>Where a worker's step result lands in the vector env's buffers: its rows start at <see cref="Offset"/>.</summary>
    public readonly struct StepTarget(float[] observations, double[] rewards, bool[] terminated, bool[] truncated, VectorInfo info, int offset, int count, int obsSize, byte[]? observationBytes = null)
    {
        public readonly float[] Observations = observations;
        public readonly byte[]? ObservationBytes = observationBytes; // images: kept as bytes too
        public readonly double[] Rewards = rewards;
        public readonly bool[] Terminated = terminated;
        public readonly bool[] Truncated = truncated;
        public readonly VectorInfo Info = info;
        public readonly int Offset = offset;
        public readonly int Count = count;
        public readonly int ObsSize = obsSize;
    }

    /// <summary>Decodes a StepResult body into the target rows. Throws <see cref="InvalidDataException"/> on a malformed result.</summary>
    public static void ReadStepResult(ReadOnlySpan<byte> body, in StepTarget t)
    {
        int n = t.Count, o = t.Offset, m = t.ObsSize;
        var r = new ProtoReader(body);
        int seen = 0;
        while (r.TryReadTag(out int field, out int wt))
        {
            if (wt != ProtoWire.LengthDelimited || field > 9) { r.Skip(wt); continue; }
            var sub = r.ReadLengthDelimited();
            switch (field)
            {
                case 1:
                    ReadObservations(ReadTensor(sub), "Tensor 'observations'", t.Observations.AsSpan(o * m, n * m), t.ObservationBytes is { } kept ? kept.AsSpan(o * m, n * m) : default);
                    seen |= 1;
                    break;
                case 2:
                    MemoryMarshal.Cast<byte, double>(Expect(ReadTensor(sub), "rewards", DType.Float64, n, 8)).CopyTo(t.Rewards.AsSpan(o, n));
                    seen |= 2;
                    break;
                case 3: ReadBools(ReadTensor(sub), "terminated", t.Terminated.AsSpan(o, n)); seen |= 4; break;
                case 4: ReadBools(ReadTensor(sub), "truncated", t.Truncated.AsSpan(o, n)); seen |= 8; break;
                case 5: ReadEpisodeStats(sub, t.Info.Episode, o, n); break;
                case 6:
                    ReadBools(ReadTensor(sub), "final_mask", t.Info.HasFinalObservation.AsSpan(o, n));
                    break;
                case 7:
                    ReadObservations(ReadTensor(sub), "Tensor 'final_observations'", t.Info.FinalObservations.AsSpan(o * m, n * m));
                    break;
                case 8: ReadEpisodeStats(sub, t.Info.FinalEpisode, o, n); break;
                case 9: InfoCodec.Decode(Protos.InfoEntry.Parser.ParseFrom(sub), t.Info, o, n); break;
            }
        }
        if (seen != 15)
            throw new InvalidDataException("StepResult lacks one of observations, rewards, terminated, truncated; a worker must send all four.");
    }

    // what: "Tensor 'name'" as a literal, so that naming it costs nothing on the hot path.
    private static void ReadObservations(TensorView t, string what, Span<float> dest, Span<byte> destBytes = default)
    {
        if (t.Count != dest.Length) throw new InvalidDataException($"{what} has {t.Count} elements; expected {dest.Length}.");
        ObservationCodec.Decode(t.DType, t.Data, dest.Length, dest, destBytes, what);
    }

    /// <summary>Decodes EpisodeStats into <paramref name="batch"/> rows offset..offset+n.</summary>
    public static void ReadEpisodeStats(ReadOnlySpan<byte> body, EpisodeBatch batch, int offset, int n)
    {
        var r = new ProtoReader(body);
        ReadOnlySpan<byte> mask = default, returns = default, lengths = default, seconds = default;
        while (r.TryReadTag(out int field, out int wt))
        {
            if (wt != ProtoWire.LengthDelimited) { r.Skip(wt); continue; }
            var sub = r.ReadLengthDelimited();
            switch (field)
            {
                case 1: mask = Expect(ReadTensor(sub), "episode.mask", DType.Bool, n, 1); break;
                case 2: returns = Expect(ReadTensor(sub), "episode.returns", DType.Float64, n, 8); break;
                case 3: lengths = Expect(ReadTensor(sub), "episode.lengths", DType.Int64, n, 8); break;
                case 4: seconds = Expect(ReadTensor(sub), "episode.seconds", DType.Float64, n, 8); break;
            }
        }
        if (mask.IsEmpty || returns.IsEmpty || lengths.IsEmpty || seconds.IsEmpty)
            throw new InvalidDataException("EpisodeStats must carry mask, returns, lengths and seconds.");
        var ret = MemoryMarshal.Cast<byte, double>(returns);
        var len = MemoryMarshal.Cast<byte, long>(lengths);
        var sec = MemoryMarshal.Cast<byte, double>(seconds);
        for (int i = 0; i < n; i++)
            if (mask[i] != 0) batch.Set(offset + i, new EpisodeStatistics(ret[i], (int)Math.Clamp(len[i], 0, int.MaxValue), sec[i]));
    }
}
