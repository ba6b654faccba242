using System.Runtime.InteropServices;
using ClusterEnv.Transport.Protos;
using ClusterEnv.Vector;
using Google.Protobuf;

namespace ClusterEnv.Transport;

/// <summary>
/// The sub-envs' extra info on the wire, Gymnasium 1.x style: one entry per key, its numeric values stacked over the
/// sub-envs (scalars as (n), arrays of k as (n, k)) with a mask of the sub-envs that reported it. Values that are not
/// numbers, bools or numeric arrays of one length cannot be stacked and are dropped; <see cref="Encode"/> reports
/// each such key once per process through its callback.
/// </summary>
internal static class InfoCodec
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> Warned = new();

    /// <summary>The entries of <paramref name="info"/>'s extras (empty when none).</summary>
    public static List<InfoEntry> Encode(VectorInfo info, Action<string>? dropped = null)
    {
        var entries = new List<InfoEntry>();
        if (!info.HasExtra) return entries;
        int n = info.NumEnvs;
        foreach (var key in info.ExtraKeys)
        {
            info.TryGetStacked(key, out var values, out var mask);
            var entry = Stack(key, values, mask, n, out string? why);
            if (entry is not null) entries.Add(entry);
            else if (Warned.TryAdd(key, true)) dropped?.Invoke($"info['{key}'] is not sent to the learner: {why}. Only numbers, bools and numeric arrays of one length travel.");
        }
        return entries;
    }

    private static InfoEntry? Stack(string key, object?[] values, bool[] mask, int n, out string? why)
    {
        why = null;
        var present = values.Where((v, i) => mask[i]).ToArray();
        var maskBytes = mask.Select(m => m ? (byte)1 : (byte)0).ToArray();
        Tensor t;
        if (present.All(v => v is bool))
            t = Make(Protos.DType.Bool, [n], values.Select(v => v is true ? (byte)1 : (byte)0).ToArray());
        else if (present.All(v => v is sbyte or byte or short or ushort or int or uint or long))
            t = Make(Protos.DType.Int64, [n], MemoryMarshal.AsBytes(values.Select(v => v is null ? 0L : Convert.ToInt64(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray().AsSpan()));
        else if (present.All(v => v is sbyte or byte or short or ushort or int or uint or long or ulong or float or double or decimal))
            t = Make(Protos.DType.Float64, [n], MemoryMarshal.AsBytes(values.Select(v => v is null ? 0.0 : Convert.ToDouble(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray().AsSpan()));
        else if (present.All(v => v is float[] or double[] or int[] or long[]) && present.Select(v => ((Array)v!).Length).Distinct().Count() == 1)
        {
            int k = ((Array)present[0]!).Length;
            var flat = new double[n * k];
            for (int i = 0; i < n; i++)
                if (mask[i])
                    for (int j = 0; j < k; j++) flat[i * k + j] = Convert.ToDouble(((Array)values[i]!).GetValue(j), System.Globalization.CultureInfo.InvariantCulture);
            t = Make(Protos.DType.Float64, [n, k], MemoryMarshal.AsBytes(flat.AsSpan()));
        }
        else
        {
            why = $"its values are {string.Join(", ", present.Select(v => v?.GetType().Name ?? "null").Distinct())}";
            return null;
        }
        return new InfoEntry { Key = key, Values = t, Mask = Make(Protos.DType.Bool, [n], maskBytes) };
    }

    private static Tensor Make(Protos.DType dtype, long[] shape, ReadOnlySpan<byte> data)
    {
        var t = new Tensor { Dtype = dtype, Data = ByteString.CopyFrom(data) };
        t.Shape.AddRange(shape);
        return t;
    }

    /// <summary>The encoded bytes of <paramref name="entries"/> as repeated field <paramref name="field"/> (tag, length, body each).</summary>
    public static byte[] ToField(List<InfoEntry> entries, int field)
    {
        if (entries.Count == 0) return [];
        using var ms = new MemoryStream();
        var cos = new CodedOutputStream(ms);
        foreach (var e in entries)
        {
            cos.WriteTag(field, WireFormat.WireType.LengthDelimited);
            cos.WriteMessage(e);
        }
        cos.Flush();
        return ms.ToArray();
    }

    /// <summary>Puts one entry's values into <paramref name="info"/> for sub-envs offset..offset+count where its mask is set.</summary>
    public static void Decode(InfoEntry e, VectorInfo info, int offset, int count)
    {
        var mask = e.Mask.Data.Span;
        if (mask.Length != count) throw new InvalidDataException($"info['{e.Key}'] has a mask of {mask.Length} for {count} envs.");
        int k = e.Values.Shape.Count == 2 ? checked((int)e.Values.Shape[1]) : 1;
        var data = e.Values.Data.Span;
        for (int i = 0; i < count; i++)
        {
            if (mask[i] == 0) continue;
            object value = e.Values.Dtype switch
            {
                Protos.DType.Bool => data[i] != 0,
                Protos.DType.Int64 => MemoryMarshal.Cast<byte, long>(data)[i],
                Protos.DType.Float64 when e.Values.Shape.Count == 2 => MemoryMarshal.Cast<byte, double>(data).Slice(i * k, k).ToArray(),
                Protos.DType.Float64 => MemoryMarshal.Cast<byte, double>(data)[i],
                var d => throw new InvalidDataException($"info['{e.Key}'] has dtype {d}; expected FLOAT64, INT64 or BOOL."),
            };
            info.SetExtra(offset + i, e.Key, value);
        }
    }
}
