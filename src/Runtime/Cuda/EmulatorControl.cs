using System.Runtime.InteropServices;
using BlockDance.Runtime.Cuda.Native;

namespace BlockDance.Runtime.Cuda;

/// <summary>Counters of the emulator (native/README.md): allocations, copies by direction, launches, GEMMs.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct EmulatorCounters
{
    public ulong LiveAllocations, LiveBytes;
    public ulong HostToDeviceCopies, HostToDeviceBytes;
    public ulong DeviceToHostCopies, DeviceToHostBytes;
    public ulong DeviceToDeviceCopies, DeviceToDeviceBytes;
    public ulong Launches, GemmCalls, Memsets;

    public readonly ulong HostCopies => HostToDeviceCopies + DeviceToHostCopies;
}

/// <summary>
/// The emulator's own controls, exported by <c>libcuda_emu.so</c> next to the driver surface: thread count, thread
/// schedule (<c>forward</c>, <c>reverse</c>, <c>random:SEED</c>), the detailed message of the last failure, and counters.
/// </summary>
internal sealed unsafe class EmulatorControl
{
    private readonly delegate* unmanaged<uint, int> _setThreads;
    private readonly delegate* unmanaged<byte*, int> _setSchedule;
    private readonly delegate* unmanaged<byte*> _getSchedule;
    private readonly delegate* unmanaged<byte*> _lastError;
    private readonly delegate* unmanaged<EmulatorCounters*, void> _getCounters;
    private readonly delegate* unmanaged<void> _resetCounters;
    private readonly delegate* unmanaged<byte*, ulong> _launchCount;
    private readonly delegate* unmanaged<byte*, byte*> _signature;
    private readonly delegate* unmanaged<byte*> _kernelList;

    internal EmulatorControl(NativeLibraryHandle lib)
    {
        _setThreads = (delegate* unmanaged<uint, int>)lib.Export("emu_set_threads");
        _setSchedule = (delegate* unmanaged<byte*, int>)lib.Export("emu_set_schedule");
        _getSchedule = (delegate* unmanaged<byte*>)lib.Export("emu_get_schedule");
        _lastError = (delegate* unmanaged<byte*>)lib.Export("emu_last_error");
        _getCounters = (delegate* unmanaged<EmulatorCounters*, void>)lib.Export("emu_get_counters");
        _resetCounters = (delegate* unmanaged<void>)lib.Export("emu_reset_counters");
        _launchCount = (delegate* unmanaged<byte*, ulong>)lib.Export("emu_launch_count");
        _signature = (delegate* unmanaged<byte*, byte*>)lib.Export("emu_kernel_signature");
        _kernelList = (delegate* unmanaged<byte*>)lib.Export("emu_kernel_list");
    }

    /// <summary>OS threads that run blocks (1 makes every launch deterministic in order).</summary>
    public void SetThreads(int threads)
    {
        if (_setThreads((uint)threads) != 0)
            throw new ArgumentException($"the emulator rejected {threads} threads");
    }

    /// <summary>Order in which the threads of a block run: "forward", "reverse" or "random:SEED".</summary>
    public void SetSchedule(string schedule)
    {
        int r;
        fixed (byte* p = Utf8(schedule))
            r = _setSchedule(p);
        if (r != 0)
            throw new ArgumentException($"the emulator rejected the schedule '{schedule}' (expected forward, reverse or random:SEED)");
    }

    /// <summary>The current schedule, e.g. "forward" or "random:42" (to restore it after a test changed it).</summary>
    public string GetSchedule() => _getSchedule() is var p && p is not null ? Marshal.PtrToStringUTF8((nint)p) ?? "forward" : "forward";

    public string LastError() => _lastError() is var p && p is not null ? Marshal.PtrToStringUTF8((nint)p) ?? "" : "";

    public EmulatorCounters Counters
    {
        get
        {
            EmulatorCounters c;
            _getCounters(&c);
            return c;
        }
    }

    /// <summary>Resets the counters (not the live allocation counts).</summary>
    public void ResetCounters() => _resetCounters();

    public ulong LaunchCount(string kernel)
    {
        fixed (byte* p = Utf8(kernel))
            return _launchCount(p);
    }

    /// <summary>The kernel's parameter signature (p pointer, i/u 32-bit, l/L 64-bit, f float, d double), or null if unknown.</summary>
    public string? KernelSignature(string kernel)
    {
        fixed (byte* p = Utf8(kernel))
            return _signature(p) is var s && s is not null ? Marshal.PtrToStringUTF8((nint)s) : null;
    }

    /// <summary>Every kernel the emulator registered: its name, parameter signature and source file (<c>emu_kernel_list</c>), sorted by name.</summary>
    public IReadOnlyList<(string Name, string Signature, string Source)> KernelList()
    {
        string text = _kernelList() is var p && p is not null ? Marshal.PtrToStringUTF8((nint)p) ?? "" : "";
        return text.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(' ') is [var name, var signature, var source] ? (name, signature, source)
                : throw new InvalidOperationException($"emu_kernel_list: unexpected line '{line}'"))
            .ToList();
    }

    private static byte[] Utf8(string s) => System.Text.Encoding.UTF8.GetBytes(s + "\0");
}
