using System.Runtime.InteropServices;
using ClusterEnv.Spaces;
using Google.Protobuf;
using P = ClusterEnv.Transport.Protos;

namespace ClusterEnv.Transport;

/// <summary>Converts spaces to and from their wire form (<c>clusterenv.v1.Space</c>), so the hub can check what a worker hosts.</summary>
public static class SpaceCodec
{
    /// <summary>The wire form of <paramref name="space"/>.</summary>
    public static P.Space ToProto(Space space)
    {
        ArgumentNullException.ThrowIfNull(space);
        var p = new P.Space();
        switch (space)
        {
            case Box b:
                var shape = b.Shape.Select(d => (long)d).ToArray();
                // Bounds travel as float32, or as float64 for a float64 box (exact either way).
                p.Box = b.DType == DType.Float64
                    ? new P.BoxSpace { Low = Tensor(P.DType.Float64, MemoryMarshal.AsBytes(b.Low64), shape), High = Tensor(P.DType.Float64, MemoryMarshal.AsBytes(b.High64), shape), Dtype = P.DType.Float64 }
                    : new P.BoxSpace { Low = Tensor(P.DType.Float32, MemoryMarshal.AsBytes(b.Low), shape), High = Tensor(P.DType.Float32, MemoryMarshal.AsBytes(b.High), shape), Dtype = ToProto(b.DType) };
                break;
            case Discrete d:
                p.Discrete = new P.DiscreteSpace { N = d.N, Start = d.Start };
                break;
            case MultiDiscrete m:
                p.MultiDiscrete = new P.MultiDiscreteSpace();
                foreach (int n in m.Nvec) p.MultiDiscrete.Nvec.Add(n);
                foreach (int s in m.Start) p.MultiDiscrete.Start.Add(s);
                break;
            case MultiBinary mb:
                p.MultiBinary = new P.MultiBinarySpace();
                p.MultiBinary.Shape.AddRange(mb.Shape.Select(d => (long)d));
                break;
            case TupleSpace t:
                p.Tuple = new P.TupleSpace();
                p.Tuple.Spaces.AddRange(t.Spaces.Select(ToProto));
                break;
            case DictSpace ds:
                p.Dict = new P.DictSpace();
                foreach (var (key, sub) in ds.Items)
                {
                    p.Dict.Keys.Add(key);
                    p.Dict.Spaces.Add(ToProto(sub));
                }
                break;
            default:
                throw new NotSupportedException($"Space type {space.GetType().Name} has no wire form; use Box, Discrete, MultiDiscrete, MultiBinary, Tuple or Dict.");
        }
        return p;
    }

    /// <summary>The space a wire form describes; throws <see cref="InvalidDataException"/> naming what is wrong.</summary>
    public static Space FromProto(P.Space? p)
    {
        if (p is null) throw new InvalidDataException("The space is missing.");
        try
        {
            return p.KindCase switch
            {
                P.Space.KindOneofCase.Box => FromBox(p.Box),
                P.Space.KindOneofCase.Discrete => new Discrete(checked((int)p.Discrete.N), checked((int)p.Discrete.Start)),
                P.Space.KindOneofCase.MultiDiscrete => new MultiDiscrete(
                    p.MultiDiscrete.Nvec.Select(v => checked((int)v)).ToArray(),
                    p.MultiDiscrete.Start.Count == 0 ? null : p.MultiDiscrete.Start.Select(v => checked((int)v)).ToArray()),
                P.Space.KindOneofCase.MultiBinary => new MultiBinary(p.MultiBinary.Shape.Select(v => checked((int)v)).ToArray()),
                P.Space.KindOneofCase.Tuple => new TupleSpace(p.Tuple.Spaces.Select(FromProto).ToArray()),
                P.Space.KindOneofCase.Dict => FromDict(p.Dict),
                _ => throw new InvalidDataException("The space has no kind set; set one of box, discrete, multi_discrete, multi_binary, tuple, dict."),
            };
        }
        catch (Exception e) when (e is ArgumentException or OverflowException)
        {
            throw new InvalidDataException($"Invalid space on the wire: {e.Message}", e);
        }
    }

    private static Space FromBox(P.BoxSpace b)
    {
        var low = ReadBounds(b.Low, "low");
        var high = ReadBounds(b.High, "high");
        var shape = b.Low.Shape.Select(v => checked((int)v)).ToArray();
        if (!b.High.Shape.SequenceEqual(b.Low.Shape))
            throw new InvalidDataException($"Box low has shape ({string.Join(",", b.Low.Shape)}) but high has ({string.Join(",", b.High.Shape)}).");
        return new Box(low, high, shape, FromProto(b.Dtype));
    }

    private static DictSpace FromDict(P.DictSpace d)
    {
        if (d.Keys.Count != d.Spaces.Count)
            throw new InvalidDataException($"Dict space has {d.Keys.Count} keys but {d.Spaces.Count} spaces.");
        return new DictSpace(d.Keys.Zip(d.Spaces, (k, s) => (k, FromProto(s))).ToArray());
    }

    private static P.Tensor Tensor(P.DType dtype, ReadOnlySpan<byte> data, long[] shape)
    {
        var t = new P.Tensor { Dtype = dtype, Data = ByteString.CopyFrom(data) };
        t.Shape.AddRange(shape);
        return t;
    }

    private static double[] ReadBounds(P.Tensor? t, string name)
    {
        if (t is null) throw new InvalidDataException($"Box {name} is missing.");
        int width = t.Dtype switch
        {
            P.DType.Float32 => 4,
            P.DType.Float64 => 8,
            _ => throw new InvalidDataException($"Box {name} has dtype {t.Dtype}; bounds travel as FLOAT32 (or FLOAT64 for a float64 box)."),
        };
        long count = t.Shape.Aggregate(1L, (a, d) => a * d);
        if (t.Data.Length != count * width) throw new InvalidDataException($"Box {name} has {t.Data.Length} bytes for shape ({string.Join(",", t.Shape)}) of {t.Dtype}; expected {count * width}.");
        return width == 8
            ? MemoryMarshal.Cast<byte, double>(t.Data.Span).ToArray()
            : Array.ConvertAll(MemoryMarshal.Cast<byte, float>(t.Data.Span).ToArray(), x => (double)x);
    }

    /// <summary>Wire dtype of a space dtype.</summary>
    public static P.DType ToProto(DType d) => d switch
    {
        DType.Float32 => P.DType.Float32,
        DType.Int64 => P.DType.Int64,
        DType.Int8 => P.DType.Int8,
        DType.UInt8 => P.DType.Uint8,
        DType.Float64 => P.DType.Float64,
        _ => throw new ArgumentOutOfRangeException(nameof(d), d, "Unknown dtype."),
    };

    /// <summary>Space dtype of a wire dtype.</summary>
    public static DType FromProto(P.DType d) => d switch
    {
        P.DType.Float32 => DType.Float32,
        P.DType.Int64 => DType.Int64,
        P.DType.Int8 => DType.Int8,
        P.DType.Uint8 => DType.UInt8,
        P.DType.Float64 => DType.Float64,
        _ => throw new InvalidDataException($"Dtype {d} is not a space dtype; use FLOAT32, FLOAT64, INT64, INT8 or UINT8."),
    };
}
