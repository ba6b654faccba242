using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace ClusterEnv.Transport.SharedMemory;

/// <summary>
/// A single-producer, single-consumer ring of length-prefixed messages in memory that two processes map (see
/// <see cref="ShmChannel"/>). The producer copies a message in and publishes it by advancing the tail; the consumer
/// copies it out and frees the space by advancing the head. A side that finds nothing to do spins for a short while
/// (<see cref="SpinMicroseconds"/>), then sleeps on a futex that the other side wakes only when someone sleeps, so a
/// busy ring makes no system calls and an idle one burns no CPU.
/// </summary>
/// <remarks>
/// Layout of the header (each hot word on its own cache line): head (long) at 0, tail (long) at 64, the data futex word
/// and the consumer's sleeping flag at 128/132, the space futex word and the producer's sleeping flag at 192/196, the
/// closed flag at 256. A record is a 4-byte little-endian length (top bit: more records of the same message follow),
/// the bytes, and padding to 8; a record may wrap around the end of the data area.
/// </remarks>
internal sealed unsafe class ShmRing
{
    /// <summary>Bytes of header before the data area.</summary>
    public const int HeaderSize = 512;

    private const int HeadOffset = 0, TailOffset = 64, DataSeqOffset = 128, ConsumerSleepsOffset = 132,
        SpaceSeqOffset = 192, ProducerSleepsOffset = 196, ClosedOffset = 256;

    private readonly byte* _header;
    private readonly byte* _data;
    private readonly long _mask;

    /// <summary>A ring over <paramref name="header"/> (<see cref="HeaderSize"/> bytes, zeroed when new) and <paramref name="capacity"/> bytes of data after it.</summary>
    public ShmRing(byte* header, int capacity)
    {
        if (capacity < 64 || (capacity & (capacity - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "The ring's capacity must be a power of two of at least 64 bytes.");
        _header = header;
        _data = header + HeaderSize;
        Capacity = capacity;
        _mask = capacity - 1;
    }

    /// <summary>Bytes of data the ring holds.</summary>
    public int Capacity { get; }

    /// <summary>The largest record: half the capacity, less its length prefix. Longer messages travel as several records.</summary>
    public int MaxChunk => Capacity / 2 - 8;

    /// <summary>
    /// The longest a side spins before it sleeps on the futex. The spin adapts, as an adaptive mutex does: a wait that
    /// ends while spinning keeps the full spin; one that has to sleep halves it, down to none, and then every 32nd wait
    /// spins in full again to find out whether the other side has become quick. On a loaded machine, where spinning
    /// only takes the core the other side needs, waits go straight to the futex.
    /// </summary>
    public int SpinMicroseconds
    {
        get => _maxSpinUs;
        init => _maxSpinUs = _spinUs = Math.Max(0, value);
    }

    private readonly int _maxSpinUs = 20;
    private int _spinUs = 20;
    private int _probe;

    /// <summary>The current spin (µs), after adapting.</summary>
    public int CurrentSpinMicroseconds => _spinUs;

    private ref long Head => ref Unsafe.AsRef<long>(_header + HeadOffset);
    private ref long Tail => ref Unsafe.AsRef<long>(_header + TailOffset);
    private int* DataSeq => (int*)(_header + DataSeqOffset);
    private int* ConsumerSleeps => (int*)(_header + ConsumerSleepsOffset);
    private int* SpaceSeq => (int*)(_header + SpaceSeqOffset);
    private int* ProducerSleeps => (int*)(_header + ProducerSleepsOffset);
    private int* ClosedFlag => (int*)(_header + ClosedOffset);

    /// <summary>True once either side closed the ring.</summary>
    public bool IsClosed => Volatile.Read(ref *ClosedFlag) != 0;

    /// <summary>Marks the ring closed and wakes both sides (a sleeper then sees <see cref="IsClosed"/>).</summary>
    public void Close()
    {
        Interlocked.Exchange(ref *ClosedFlag, 1);
        Interlocked.Increment(ref *DataSeq);
        Interlocked.Increment(ref *SpaceSeq);
        Futex.Wake(DataSeq);
        Futex.Wake(SpaceSeq);
    }

    private static int Footprint(int length) => (4 + length + 7) & ~7;

    // The length word's top bit: more records of the same message follow.
    private const uint MoreFollows = 0x8000_0000;

    /// <summary>
    /// Writes one message of any length (longer than <see cref="MaxChunk"/>: as consecutive records the reader joins),
    /// waiting up to <paramref name="timeoutMs"/> (negative: no limit) for space for its first record. False on that
    /// timeout, with nothing written; once the first record is in, the rest waits as long as it takes.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The ring is closed.</exception>
    public bool Write(ReadOnlySpan<byte> message, int timeoutMs = -1)
    {
        bool first = true;
        do
        {
            int n = Math.Min(MaxChunk, message.Length);
            if (!WriteRecord(message[..n], more: n < message.Length, first ? timeoutMs : -1)) return false;
            message = message[n..];
            first = false;
        }
        while (!message.IsEmpty);
        return true;
    }

    private bool WriteRecord(ReadOnlySpan<byte> record, bool more, int timeoutMs)
    {
        int need = Footprint(record.Length);
        long tail = Tail; // only this side writes it
        if (!AwaitCondition(space: true, tail, need, timeoutMs)) return false;
        BinaryPrimitives.WriteUInt32LittleEndian(new Span<byte>(_data + (tail & _mask), 4), (uint)record.Length | (more ? MoreFollows : 0));
        CopyIn(record, (tail + 4) & _mask);
        Volatile.Write(ref Tail, tail + need);               // publish
        Interlocked.Increment(ref *DataSeq);                  // full fence: orders the tail before reading the flag
        if (Volatile.Read(ref *ConsumerSleeps) != 0) Futex.Wake(DataSeq);
        return true;
    }

    /// <summary>
    /// Reads one whole message into <paramref name="buffer"/> (grown when too small), waiting up to
    /// <paramref name="timeoutMs"/> (negative: no limit) for its first record. Returns its length, or -1 on timeout.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The ring is closed and empty.</exception>
    public int Read(ref byte[] buffer, int timeoutMs = -1)
    {
        int total = 0;
        bool more;
        do
        {
            long head = Head; // only this side writes it
            if (!AwaitCondition(space: false, head, 0, total == 0 ? timeoutMs : -1)) return -1;
            uint word = BinaryPrimitives.ReadUInt32LittleEndian(new ReadOnlySpan<byte>(_data + (head & _mask), 4));
            more = (word & MoreFollows) != 0;
            int length = (int)(word & ~MoreFollows);
            if (length > MaxChunk) throw new InvalidDataException($"The ring holds a record of {length} bytes at {head}; the other side wrote garbage.");
            if (buffer.Length < total + length) Array.Resize(ref buffer, Math.Max(total + length, buffer.Length * 2));
            CopyOut(buffer.AsSpan(total, length), (head + 4) & _mask);
            total += length;
            Volatile.Write(ref Head, head + Footprint(length)); // free the space
            Interlocked.Increment(ref *SpaceSeq);
            if (Volatile.Read(ref *ProducerSleeps) != 0) Futex.Wake(SpaceSeq);
        }
        while (more);
        return total;
    }

    private void CopyIn(ReadOnlySpan<byte> src, long at)
    {
        int first = (int)Math.Min(src.Length, Capacity - at);
        src[..first].CopyTo(new Span<byte>(_data + at, first));
        if (first < src.Length) src[first..].CopyTo(new Span<byte>(_data, src.Length - first));
    }

    private void CopyOut(Span<byte> dest, long at)
    {
        int first = (int)Math.Min(dest.Length, Capacity - at);
        new ReadOnlySpan<byte>(_data + at, first).CopyTo(dest);
        if (first < dest.Length) new ReadOnlySpan<byte>(_data, dest.Length - first).CopyTo(dest[first..]);
    }

    // Spin for SpinMicroseconds, then sleep on the futex word with the sleeping flag raised. The other side bumps the
    // word (a full fence) after it changes the state and wakes only when the flag is up: whichever order the two
    // sides' steps take, a sleeper either sees the change before it sleeps or the word has moved and it does not sleep.
    private bool Ready(bool space, long position, int need) =>
        space ? Capacity - (position - Volatile.Read(ref Head)) >= need : Volatile.Read(ref Tail) != position;

    private bool AwaitCondition(bool space, long position, int need, int timeoutMs)
    {
        if (Ready(space, position, need)) return true;
        if (timeoutMs == 0) return false; // a try: no spin, no sleep
        int* word = space ? SpaceSeq : DataSeq, sleeps = space ? ProducerSleeps : ConsumerSleeps;
        long start = Stopwatch.GetTimestamp();
        // With the spin worn down to nothing, every 32nd wait still spins in full, to notice the other side answering fast again.
        int spinUs = _spinUs > 0 || ++_probe % 32 != 0 ? _spinUs : _maxSpinUs;
        long spinUntil = start + spinUs * Stopwatch.Frequency / 1_000_000;
        while (Stopwatch.GetTimestamp() < spinUntil)
        {
            Thread.SpinWait(8);
            if (Ready(space, position, need))
            {
                _spinUs = _maxSpinUs; // caught while spinning: spinning pays
                return true;
            }
        }
        _spinUs /= 2; // had to sleep: spin less next time
        return SleepUntil(space, position, need, word, sleeps, start, timeoutMs);
    }

    private bool SleepUntil(bool space, long position, int need, int* word, int* sleeps, long start, int timeoutMs)
    {
        while (true)
        {
            ObjectDisposedException.ThrowIf(IsClosed, this);
            int seen = Volatile.Read(ref *word);
            Interlocked.Exchange(ref *sleeps, 1);
            if (Ready(space, position, need))
            {
                Volatile.Write(ref *sleeps, 0);
                return true;
            }
            int wait = -1;
            if (timeoutMs >= 0)
            {
                long left = timeoutMs - (long)Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                if (left <= 0)
                {
                    Volatile.Write(ref *sleeps, 0);
                    return false;
                }
                wait = (int)Math.Min(left, 100);
            }
            else wait = 100; // wake now and then to notice a closed ring even if a wake was lost to a crash
            Futex.Wait(word, seen, wait);
            Volatile.Write(ref *sleeps, 0);
            if (Ready(space, position, need)) return true;
        }
    }
}
