using System.Runtime.InteropServices;
using ClusterEnv.Spaces;
using ClusterEnv.Wrappers;
using WireType = ClusterEnv.Transport.Protos.DType;

namespace ClusterEnv.Transport;

/// <summary>
/// How observations cross the wire: as float32, or — for a uint8 Box, i.e. images — as their bytes, a quarter of the
/// size (28,224 bytes for an 84×84×4 frame stack instead of 112,896). Vector envs keep images as bytes and widen them
/// into their float32 buffers (the values 0..255 are exact in it); rollouts keep the bytes alone. Receivers take
/// either dtype, so a worker that sends float32 images still works.
/// </summary>
internal static class ObservationCodec
{
    /// <summary>The dtype observations of <paramref name="space"/> travel as.</summary>
    public static WireType WireTypeOf(Space space) => Vector.ObservationStorage.Of(space) == DType.UInt8 ? WireType.Uint8 : WireType.Float32;

    /// <summary>Bytes per observation element on the wire.</summary>
    public static int ElementSize(WireType type) => type == WireType.Uint8 ? 1 : 4;

    /// <summary>Writes <paramref name="values"/> as <paramref name="type"/> into <paramref name="dest"/> (count × element size bytes).</summary>
    public static void Encode(ReadOnlySpan<float> values, WireType type, Span<byte> dest)
    {
        if (type == WireType.Uint8) Pixels.ToBytes(values, dest[..values.Length]);
        else MemoryMarshal.AsBytes(values).CopyTo(dest);
    }

    /// <summary>The observations of a tensor of <paramref name="count"/> elements into <paramref name="dest"/>; throws naming <paramref name="what"/> when the size or dtype is wrong.</summary>
    public static void Decode(WireType type, ReadOnlySpan<byte> data, int count, Span<float> dest, string what)
    {
        switch (type)
        {
            case WireType.Float32 when data.Length == count * 4:
                MemoryMarshal.Cast<byte, float>(data).CopyTo(dest[..count]);
                break;
            case WireType.Uint8 when data.Length == count:
                Pixels.ToFloat(data, dest[..count]);
                break;
            default:
                throw new InvalidDataException($"{what} has {data.Length} data bytes of {type}; expected {count} observation values as FLOAT32 ({count * 4} bytes) or UINT8 ({count} bytes).");
        }
    }

    /// <summary><see cref="Decode(WireType, ReadOnlySpan{byte}, int, Span{float}, string)"/>, keeping the bytes of images in <paramref name="destBytes"/> too (empty: not kept).</summary>
    public static void Decode(WireType type, ReadOnlySpan<byte> data, int count, Span<float> dest, Span<byte> destBytes, string what)
    {
        Decode(type, data, count, dest, what);
        if (destBytes.IsEmpty) return;
        if (type == WireType.Uint8) data.CopyTo(destBytes[..count]);
        else Pixels.ToBytes(dest[..count], destBytes[..count]);
    }
}
