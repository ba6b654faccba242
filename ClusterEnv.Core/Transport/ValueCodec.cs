using System.Runtime.InteropServices;
using ClusterEnv.Transport.Protos;
using Google.Protobuf;

namespace ClusterEnv.Transport;

/// <summary>Values that cross the wire for GetAttr / SetAttr / Call: null, numbers, integers, bools, strings and 1-D numeric arrays, and RGB frames (uint8 H×W×3).</summary>
internal static class ValueCodec
{
    public static Value ToProto(object? v, string what) => v switch
    {
        null => new Value { None = true },
        bool b => new Value { Flag = b },
        string s => new Value { Text = s },
        Enum e => new Value { Text = e.ToString() },
        sbyte or byte or short or ushort or int or uint or long => new Value { Integer = Convert.ToInt64(v, System.Globalization.CultureInfo.InvariantCulture) },
        float or double or decimal or ulong => new Value { Number = Convert.ToDouble(v, System.Globalization.CultureInfo.InvariantCulture) },
        float[] a => Tensor(Protos.DType.Float32, a.Length, MemoryMarshal.AsBytes(a.AsSpan())),
        double[] a => Tensor(Protos.DType.Float64, a.Length, MemoryMarshal.AsBytes(a.AsSpan())),
        int[] a => Tensor(Protos.DType.Int32, a.Length, MemoryMarshal.AsBytes(a.AsSpan())),
        long[] a => Tensor(Protos.DType.Int64, a.Length, MemoryMarshal.AsBytes(a.AsSpan())),
        bool[] a => Tensor(Protos.DType.Bool, a.Length, a.Select(x => x ? (byte)1 : (byte)0).ToArray()),
        byte[] a => Tensor(Protos.DType.Uint8, a.Length, a),
        Rendering.RgbFrame f => new Value { Tensor = new Protos.Tensor { Dtype = Protos.DType.Uint8, Shape = { f.Height, f.Width, 3 }, Data = ByteString.CopyFrom(f.Pixels) } },
        _ => throw new ArgumentException($"{what} is a {v.GetType().Name}, which cannot cross the wire; use a number, a bool, a string, or an array of numbers or bools."),
    };

    private static Value Tensor(Protos.DType dtype, int length, ReadOnlySpan<byte> data) =>
        new() { Tensor = new Protos.Tensor { Dtype = dtype, Shape = { length }, Data = ByteString.CopyFrom(data) } };

    public static object? FromProto(Value v) => v.KindCase switch
    {
        Value.KindOneofCase.None or Value.KindOneofCase.None_ => null,
        Value.KindOneofCase.Flag => v.Flag,
        Value.KindOneofCase.Text => v.Text,
        Value.KindOneofCase.Integer => v.Integer,
        Value.KindOneofCase.Number => v.Number,
        Value.KindOneofCase.Tensor => v.Tensor.Dtype switch
        {
            Protos.DType.Float32 => MemoryMarshal.Cast<byte, float>(v.Tensor.Data.Span).ToArray(),
            Protos.DType.Float64 => MemoryMarshal.Cast<byte, double>(v.Tensor.Data.Span).ToArray(),
            Protos.DType.Int32 => MemoryMarshal.Cast<byte, int>(v.Tensor.Data.Span).ToArray(),
            Protos.DType.Int64 => MemoryMarshal.Cast<byte, long>(v.Tensor.Data.Span).ToArray(),
            Protos.DType.Bool => v.Tensor.Data.Span.ToArray().Select(b => b != 0).ToArray(),
            Protos.DType.Uint8 when v.Tensor.Shape is [var h, var w, 3] && h * w * 3 == v.Tensor.Data.Length =>
                new Rendering.RgbFrame((int)h, (int)w, v.Tensor.Data.ToByteArray()),
            Protos.DType.Uint8 => v.Tensor.Data.ToByteArray(),
            var d => throw new InvalidDataException($"A value tensor of dtype {d} is not supported (float32, float64, int32, int64, bool, uint8)."),
        },
        _ => throw new InvalidDataException($"A value of kind {v.KindCase} is not supported."),
    };
}
