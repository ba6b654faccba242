using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Text;

namespace ClusterEnv.Transport.SharedMemory;

/// <summary>
/// A two-way message channel between two processes on one host: a file under /dev/shm holding two
/// <see cref="ShmRing"/>s, one per direction. The creator (<see cref="Create"/>, e.g. the hub) sends on the first ring
/// and receives on the second; the other side (<see cref="Open"/>, a worker) the other way round. The creator removes
/// the file when it is disposed; the file is readable and writable by the creating user only.
/// </summary>
internal sealed unsafe class ShmChannel : IDisposable
{
    private const string Magic = "CESHM001";
    private const int FileHeader = 4096;

    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private readonly bool _creator;
    private readonly ShmRing _send, _receive;
    private int _disposed;

    private ShmChannel(string path, MemoryMappedFile file, MemoryMappedViewAccessor view, bool creator, int capacity, int spinMicroseconds)
    {
        Path = path;
        _file = file;
        _view = view;
        _creator = creator;
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _base = p + view.PointerOffset;
        var first = new ShmRing(_base + FileHeader, capacity) { SpinMicroseconds = spinMicroseconds };
        var second = new ShmRing(_base + FileHeader + ShmRing.HeaderSize + capacity, capacity) { SpinMicroseconds = spinMicroseconds };
        (_send, _receive) = creator ? (first, second) : (second, first);
    }

    /// <summary>The file that holds the channel.</summary>
    public string Path { get; }

    /// <summary>Bytes each direction holds.</summary>
    public int Capacity => _send.Capacity;

    /// <summary>The largest message that travels as one record; longer ones are split and joined again.</summary>
    public int MaxChunk => _send.MaxChunk;

    /// <summary>True once either side closed the channel (or this one was disposed).</summary>
    public bool IsClosed
    {
        get
        {
            if (!TryEnter()) return true;
            try
            {
                return _send.IsClosed || _receive.IsClosed;
            }
            finally
            {
                Exit();
            }
        }
    }

    /// <summary>Where channels are created, and whether this host has it (Linux with a writable /dev/shm and futexes).</summary>
    public static string Directory => "/dev/shm";

    /// <summary>
    /// This host and user as a channel's two sides compare them: the kernel's boot id (the same for every process of
    /// one running host, different on another) and the user name. Null where channels are unavailable.
    /// </summary>
    public static string? HostKey()
    {
        if (Unavailable() is not null) return null;
        try
        {
            return File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim() + "/" + Environment.UserName;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>
    /// Removes channel files named <c>{prefix}-{pid}-…</c> whose creating process no longer runs (a learner killed
    /// before it could remove them). Returns how many went.
    /// </summary>
    public static int RemoveStale(string prefix)
    {
        if (Unavailable() is not null) return 0;
        int removed = 0;
        foreach (var file in System.IO.Directory.EnumerateFiles(Directory, prefix + "-*"))
        {
            var parts = System.IO.Path.GetFileName(file)[(prefix.Length + 1)..].Split('-');
            if (parts.Length < 2 || !int.TryParse(parts[0], out int pid) || System.IO.Directory.Exists($"/proc/{pid}")) continue;
            try
            {
                File.Delete(file);
                removed++;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // another user's, or gone already
        }
        return removed;
    }

    /// <summary>Null when shared-memory channels work here; otherwise why not.</summary>
    public static string? Unavailable()
    {
        if (!Futex.IsSupported) return $"shared-memory channels need Linux on x86-64 or arm64 (this is {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, {System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture})";
        if (!System.IO.Directory.Exists(Directory)) return $"{Directory} does not exist";
        return null;
    }

    private static long FileSize(int capacity) => FileHeader + 2L * (ShmRing.HeaderSize + capacity);

    /// <summary>Creates a new channel file named <paramref name="name"/> under /dev/shm with <paramref name="capacity"/> bytes per direction.</summary>
    public static ShmChannel Create(string name, int capacity = 1 << 20, int spinMicroseconds = 20)
    {
        if (Unavailable() is { } why) throw new PlatformNotSupportedException(why);
        if (string.IsNullOrEmpty(name) || name.IndexOfAny(['/', '\0']) >= 0) throw new ArgumentException($"Channel name '{name}' must be a plain file name.", nameof(name));
        string path = System.IO.Path.Combine(Directory, name);
        long size = FileSize(capacity);
        var stream = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.ReadWrite);
        try
        {
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            stream.SetLength(size); // zero-filled: both rings start empty and open
            var file = MemoryMappedFile.CreateFromFile(stream, null, size, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: false);
            var view = file.CreateViewAccessor(0, size, MemoryMappedFileAccess.ReadWrite);
            var channel = new ShmChannel(path, file, view, creator: true, capacity, spinMicroseconds);
            var header = new Span<byte>(channel._base, 16);
            BinaryPrimitives.WriteInt32LittleEndian(header[8..], capacity);
            Encoding.ASCII.GetBytes(Magic).CopyTo(header); // last: Open checks it
            return channel;
        }
        catch
        {
            stream.Dispose();
            File.Delete(path);
            throw;
        }
    }

    /// <summary>Opens the channel at <paramref name="path"/> made by <see cref="Create"/> in another process.</summary>
    /// <exception cref="InvalidDataException">The file is not a channel (wrong magic or size).</exception>
    public static ShmChannel Open(string path, int spinMicroseconds = 20)
    {
        if (Unavailable() is { } why) throw new PlatformNotSupportedException(why);
        var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        try
        {
            Span<byte> header = stackalloc byte[16];
            stream.ReadExactly(header);
            if (Encoding.ASCII.GetString(header[..8]) != Magic) throw new InvalidDataException($"{path} is not a ClusterEnv shared-memory channel.");
            int capacity = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
            long size = FileSize(capacity);
            if (capacity <= 0 || stream.Length != size) throw new InvalidDataException($"{path} has {stream.Length} bytes; a channel of capacity {capacity} has {size}.");
            var file = MemoryMappedFile.CreateFromFile(stream, null, size, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: false);
            var view = file.CreateViewAccessor(0, size, MemoryMappedFileAccess.ReadWrite);
            return new ShmChannel(path, file, view, creator: false, capacity, spinMicroseconds);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>Sends one message (waits for space up to <paramref name="timeoutMs"/>; false on timeout).</summary>
    /// <exception cref="ObjectDisposedException">The channel is closed or disposed.</exception>
    public bool Send(ReadOnlySpan<byte> message, int timeoutMs = -1)
    {
        if (!TryEnter()) throw new ObjectDisposedException(nameof(ShmChannel));
        try
        {
            return _send.Write(message, timeoutMs);
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>Receives one message into <paramref name="buffer"/> (grown when too small): its length, or -1 on timeout.</summary>
    /// <exception cref="ObjectDisposedException">The channel is closed and empty, or disposed.</exception>
    public int Receive(ref byte[] buffer, int timeoutMs = -1)
    {
        if (!TryEnter()) throw new ObjectDisposedException(nameof(ShmChannel));
        try
        {
            return _receive.Read(ref buffer, timeoutMs);
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>Closes both directions: the other side's waits end with <see cref="ObjectDisposedException"/> once the rings are empty. A no-op once disposed.</summary>
    public void Close()
    {
        if (!TryEnter()) return;
        try
        {
            _send.Close();
            _receive.Close();
        }
        finally
        {
            Exit();
        }
    }

    // The mapping is released only when no call is inside it: Dispose may race a reader or writer on another thread
    // (a worker's watch task closing the channel as its command loop ends), and touching an unmapped page kills the
    // process. _users counts the calls inside; Disposed, once set, lets no new call in, and the last one out unmaps.
    private const int Disposed = 1 << 30;
    private int _users;

    private bool TryEnter()
    {
        while (true)
        {
            int s = Volatile.Read(ref _users);
            if ((s & Disposed) != 0) return false;
            if (Interlocked.CompareExchange(ref _users, s + 1, s) == s) return true;
        }
    }

    private void Exit()
    {
        if (Interlocked.Decrement(ref _users) == Disposed) Release();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Close(); // wakes the calls waiting inside, which then leave
        if (Interlocked.Or(ref _users, Disposed) == 0) Release();
        if (_creator) File.Delete(Path);
    }

    private void Release()
    {
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
    }
}
