using System.Runtime.InteropServices;

namespace BlockDance.Runtime;

/// <summary>
/// Native memory that tensors point into: a device allocation, or a lease on a memory-mapped file. A
/// <see cref="SafeHandle"/>, so that it is reference-counted, released exactly once, and released by its finaliser if
/// nobody disposes it; a tensor whose memory is closed refuses to hand out its address
/// (<see cref="ObjectDisposedException"/> with <see cref="DisposedMessage"/>) instead of pointing into freed memory.
/// </summary>
internal abstract class MemoryHandle() : SafeHandle(invalidHandleValue: 0, ownsHandle: true)
{
    public override bool IsInvalid => handle == 0;

    /// <summary>Why the memory is gone, for the exception a later use throws.</summary>
    public abstract string DisposedMessage { get; }
}

/// <summary>
/// The lifetime of a shared native resource (a device's context, a memory-mapped file, a loaded model): released once,
/// when its owner has disposed it and every <see cref="Lease"/> on it has ended — or by the finaliser, if all of them are
/// forgotten. Disposing the owner therefore never pulls memory from under a model or a run that still uses it.
/// </summary>
internal sealed class Lifetime : SafeHandle
{
    private readonly Action _release;

    /// <param name="name">What the resource is, for messages ("cuda-emu device", "model.safetensors (mapped)").</param>
    /// <param name="release">Frees the resource; runs once, on whichever thread ends the last reference.</param>
    public Lifetime(string name, Action release) : base(invalidHandleValue: 0, ownsHandle: true)
    {
        Name = name;
        _release = release;
        SetHandle(1);
    }

    private int _ownerDisposed;

    public string Name { get; }

    public override bool IsInvalid => handle == 0;

    /// <summary>True once the owner has disposed it (the resource lives on while leases remain; none can be added).</summary>
    public bool IsDisposed => Volatile.Read(ref _ownerDisposed) != 0;

    /// <summary>True once the resource itself is gone (not merely disposed by its owner while leases remain).</summary>
    public bool IsReleased { get; private set; }

    /// <summary>A new reference on the resource; <see cref="ObjectDisposedException"/> if its owner has already disposed it.</summary>
    /// <param name="holder">Who holds it, named in the message of a tensor used after the lease ended.</param>
    public Lease Acquire(string holder) => new(this, holder);

    /// <summary>Adds a reference without a lease object (a device allocation holds one); pair with <c>DangerousRelease</c>.</summary>
    public void AddRef()
    {
        if (IsDisposed)
            throw Disposed();
        bool added = false;
        try
        {
            DangerousAddRef(ref added);
        }
        catch (ObjectDisposedException)
        {
            throw Disposed();
        }
    }

    public ObjectDisposedException Disposed() => new(Name, $"{Name} was disposed");

    /// <summary>The owner's dispose (or the finaliser): marks it disposed, then drops the owner's reference.</summary>
    protected override void Dispose(bool disposing)
    {
        Volatile.Write(ref _ownerDisposed, 1);
        base.Dispose(disposing);
    }

    protected override bool ReleaseHandle()
    {
        IsReleased = true;
        _release();
        return true;
    }
}

/// <summary>
/// One reference on a <see cref="Lifetime"/>: the resource stays alive until every lease and its owner are disposed.
/// Tensors that point into the leased memory (a model's weights in a mapped file) are checked against the lease.
/// </summary>
internal sealed class Lease : MemoryHandle
{
    private readonly Lifetime _target;

    internal Lease(Lifetime target, string holder)
    {
        _target = target;
        Holder = holder;
        target.AddRef();
        SetHandle(1);
    }

    /// <summary>Who holds the lease ("the DitModel loaded from x.safetensors").</summary>
    public string Holder { get; }

    public override string DisposedMessage => $"it points into {_target.Name}, whose lease was released when {Holder} was disposed";

    protected override bool ReleaseHandle()
    {
        _target.DangerousRelease();
        return true;
    }
}
