namespace ClusterEnv.Transport;

/// <summary>
/// The few pieces of the protobuf wire format that the hand-written hot-path codec needs: varints, tags and
/// length-delimited fields written into a span, and a forward-only reader over one. Encodings follow what
/// Google.Protobuf's generated code writes (fields in number order, proto3 defaults omitted, repeated scalars packed),
/// so both produce identical bytes.
/// </summary>
internal static class ProtoWire
{
    public const int Varint = 0;
    public const int Fixed64 = 1;
    public const int LengthDelimited = 2;
    public const int Fixed32 = 5;

    public static int VarintSize(ulong value) => value == 0 ? 1 : (70 - System.Numerics.BitOperations.LeadingZeroCount(value)) / 7;

    /// <summary>Size of a length-delimited field (tag, length, payload) holding <paramref name="length"/> bytes.</summary>
    public static int FieldSize(int length) => 1 + VarintSize((ulong)length) + length;

    public static int WriteVarint(Span<byte> dest, ulong value)
    {
        int i = 0;
        while (value >= 0x80)
        {
            dest[i++] = (byte)(value | 0x80);
            value >>= 7;
        }
        dest[i++] = (byte)value;
        return i;
    }

    public static int WriteTag(Span<byte> dest, int field, int wireType) => WriteVarint(dest, (ulong)((field << 3) | wireType));

    /// <summary>Writes a tag and a length prefix; the caller writes <paramref name="length"/> bytes next.</summary>
    public static int WriteLengthPrefix(Span<byte> dest, int field, int length)
    {
        int n = WriteTag(dest, field, LengthDelimited);
        return n + WriteVarint(dest[n..], (ulong)length);
    }
}

/// <summary>A forward-only protobuf reader over one contiguous message. Errors throw <see cref="InvalidDataException"/>.</summary>
internal ref struct ProtoReader(ReadOnlySpan<byte> data)
{
    private readonly ReadOnlySpan<byte> _data = data;
    private int _pos;

    public readonly bool End => _pos >= _data.Length;

    /// <summary>Reads the next tag; false at the end of the message.</summary>
    public bool TryReadTag(out int field, out int wireType)
    {
        field = 0;
        wireType = 0;
        if (End) return false;
        ulong tag = ReadVarint();
        field = (int)(tag >> 3);
        wireType = (int)(tag & 7);
        if (field <= 0) throw new InvalidDataException($"Invalid protobuf field number {field}.");
        return true;
    }

    public ulong ReadVarint()
    {
        ulong result = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (_pos >= _data.Length) throw new InvalidDataException("Truncated protobuf varint.");
            byte b = _data[_pos++];
            result |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return result;
        }
        throw new InvalidDataException("Malformed protobuf varint (more than 10 bytes).");
    }

    public ReadOnlySpan<byte> ReadLengthDelimited()
    {
        ulong len = ReadVarint();
        if (len > (ulong)(_data.Length - _pos)) throw new InvalidDataException($"Truncated protobuf field: {len} bytes declared, {_data.Length - _pos} left.");
        var s = _data.Slice(_pos, (int)len);
        _pos += (int)len;
        return s;
    }

    public void Skip(int wireType)
    {
        switch (wireType)
        {
            case ProtoWire.Varint: ReadVarint(); break;
            case ProtoWire.Fixed64: Advance(8); break;
            case ProtoWire.LengthDelimited: ReadLengthDelimited(); break;
            case ProtoWire.Fixed32: Advance(4); break;
            default: throw new InvalidDataException($"Unsupported protobuf wire type {wireType}.");
        }
    }

    private void Advance(int n)
    {
        if (n > _data.Length - _pos) throw new InvalidDataException("Truncated protobuf fixed-width field.");
        _pos += n;
    }
}

/// <summary>A protobuf writer into a span that is known to be large enough (sizes are computed first).</summary>
internal ref struct ProtoWriter(Span<byte> dest)
{
    private readonly Span<byte> _dest = dest;

    public int Position { get; private set; }

    public void Varint(int field, ulong value)
    {
        if (value == 0) return; // proto3 default
        Position += ProtoWire.WriteTag(_dest[Position..], field, ProtoWire.Varint);
        Position += ProtoWire.WriteVarint(_dest[Position..], value);
    }

    public void LengthPrefix(int field, int length) => Position += ProtoWire.WriteLengthPrefix(_dest[Position..], field, length);

    public void RawVarint(ulong value) => Position += ProtoWire.WriteVarint(_dest[Position..], value);

    /// <summary>Reserves <paramref name="length"/> raw bytes and returns them for the caller to fill.</summary>
    public Span<byte> Reserve(int length)
    {
        var s = _dest.Slice(Position, length);
        Position += length;
        return s;
    }
}
