using System.Runtime.InteropServices;

namespace ClusterEnv.Transport.SharedMemory;

/// <summary>
/// Linux futexes on a 32-bit word in shared memory (not FUTEX_PRIVATE: the word may be mapped by several processes):
/// <see cref="Wait"/> sleeps while the word still holds the value the caller saw; <see cref="Wake"/> wakes sleepers.
/// </summary>
internal static unsafe class Futex
{
    private const int FutexWait = 0, FutexWake = 1;
    private const int EAGAIN = 11, EINTR = 4, ETIMEDOUT = 110;

    // SYS_futex: 202 on x86-64, 98 on arm64 (the generic syscall table).
    private static readonly long SysFutex = RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 202,
        Architecture.Arm64 => 98,
        var a => throw new PlatformNotSupportedException($"Shared-memory wake-ups need Linux futexes; no syscall number is known for {a}."),
    };

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [DllImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static extern long Syscall(long number, int* address, int op, int value, Timespec* timeout, int* address2, int value3);

    /// <summary>True where futexes can be used (Linux on x86-64 or arm64).</summary>
    public static bool IsSupported => OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.Arm64;

    /// <summary>
    /// Sleeps while <c>*word == expected</c>, up to <paramref name="timeoutMs"/> milliseconds (negative: no limit).
    /// Returns false on timeout; true when woken, when the word had already changed, or on a signal (the caller re-checks).
    /// </summary>
    public static bool Wait(int* word, int expected, int timeoutMs)
    {
        Timespec ts = default;
        Timespec* timeout = null;
        if (timeoutMs >= 0)
        {
            ts.Seconds = timeoutMs / 1000;
            ts.Nanoseconds = timeoutMs % 1000 * 1_000_000L;
            timeout = &ts;
        }
        if (Syscall(SysFutex, word, FutexWait, expected, timeout, null, 0) == 0) return true;
        int errno = Marshal.GetLastPInvokeError();
        return errno switch
        {
            EAGAIN or EINTR => true,
            ETIMEDOUT => false,
            _ => throw new IOException($"futex wait failed with errno {errno}."),
        };
    }

    /// <summary>Wakes up to <paramref name="count"/> sleepers on <paramref name="word"/>.</summary>
    public static void Wake(int* word, int count = int.MaxValue)
    {
        if (Syscall(SysFutex, word, FutexWake, count, null, null, 0) < 0)
            throw new IOException($"futex wake failed with errno {Marshal.GetLastPInvokeError()}.");
    }
}
