using System.Text;

namespace BlockDance.Runtime.Cuda;

/// <summary>
/// A loaded CUBIN or PTX image and its kernel functions (CUfunction handles). The CUmodule is owned by a
/// <see cref="System.Runtime.InteropServices.SafeHandle"/> that holds a reference on the device (whose context must
/// outlive it) and unloads the module with the context current, on <see cref="Dispose"/> or from the finaliser.
/// </summary>
public sealed unsafe class CudaModule : IDisposable
{
    private readonly CudaDevice _device;
    private readonly ModuleHandle _module;

    /// <summary>Loads <paramref name="image"/> (PTX or CUBIN) into the device's context.</summary>
    /// <param name="device">The device; it stays alive until this module is unloaded.</param>
    /// <param name="image">The PTX text or CUBIN bytes.</param>
    /// <param name="name">A name for messages (the source file).</param>
    public CudaModule(CudaDevice device, ReadOnlySpan<byte> image, string name)
    {
        _device = device;
        Name = name;
        device.MakeCurrent();
        // PTX must be NUL-terminated; a CUBIN is an ELF image and ignores the extra byte.
        var buffer = new byte[image.Length + 1];
        image.CopyTo(buffer);
        _module = new ModuleHandle(device, name);
        nint module = 0;
        fixed (byte* p = buffer)
        {
            int r = device.Api.cuModuleLoadData(&module, p);
            if (r == 0)
                _module.Set(module);
            else
                _module.Dispose();   // drops the device reference
            device.Check(r, "cuModuleLoadData");
        }
    }

    /// <summary>The module's name (its source file), used in messages.</summary>
    public string Name { get; }

    /// <summary>The function <paramref name="kernel"/> (an <c>extern "C"</c> name); a missing one throws naming the module.</summary>
    public nint Function(string kernel)
    {
        if (_module.IsClosed)
            throw new ObjectDisposedException(Name, $"the CUDA module {Name} was unloaded (disposed)");
        _device.MakeCurrent();
        nint f = 0;
        fixed (byte* p = Encoding.UTF8.GetBytes(kernel + "\0"))
            _device.Check(_device.Api.cuModuleGetFunction(&f, _module.DangerousGetHandle(), p), $"cuModuleGetFunction({Name}, \"{kernel}\")");
        return f;
    }

    /// <summary>Unloads the module (idempotent).</summary>
    public void Dispose() => _module.Dispose();

    /// <summary>A CUmodule, unloaded once with its context current; holds a reference on the device until then.</summary>
    private sealed class ModuleHandle : System.Runtime.InteropServices.SafeHandle
    {
        private readonly CudaDevice _device;
        private readonly string _name;

        public ModuleHandle(CudaDevice device, string name) : base(0, ownsHandle: true)
        {
            _device = device;
            _name = name;
            device.Lifetime.AddRef();
        }

        public override bool IsInvalid => false;   // ReleaseHandle always runs, to drop the device reference

        public void Set(nint module) => SetHandle(module);

        protected override bool ReleaseHandle()
        {
            try
            {
                if (handle != 0)
                {
                    if (_device.Api.cuCtxSetCurrent(_device.Context) is int c && c != 0)
                        _device.DisposeFailure("cuCtxSetCurrent (unloading a module)", c);
                    else if (_device.Api.cuModuleUnload(handle) is int r && r != 0)
                        _device.DisposeFailure($"cuModuleUnload({_name})", r);
                    _device.ForgetCurrent();
                }
            }
            finally
            {
                _device.Lifetime.DangerousRelease();
            }
            return true;
        }
    }
}

/// <summary>A CUDA event pair for timing work on the device's stream (timing only; never used to order work).</summary>
/// <remarks>Public for kernel benchmarks (the op harness's perf mode uses it).</remarks>
public sealed unsafe class CudaTimer : IDisposable
{
    private readonly CudaDevice _device;
    private nint _start, _stop;

    /// <summary>Creates the two events in the device's context (which the timer keeps alive).</summary>
    public CudaTimer(CudaDevice device)
    {
        _device = device;
        device.MakeCurrent();
        nint a = 0, b = 0;
        device.Check(device.Api.cuEventCreate(&a, Native.CudaDriverApi.EventDefault));
        device.Check(device.Api.cuEventCreate(&b, Native.CudaDriverApi.EventDefault));
        (_start, _stop) = (a, b);
        device.Lifetime.AddRef();   // the events belong to the context: it must outlive them
    }

    /// <summary>Records the start event on the device's stream.</summary>
    public void Start()
    {
        _device.MakeCurrent();
        _device.Check(_device.Api.cuEventRecord(_start, _device.Stream));
    }

    /// <summary>Records the stop event, waits for it and returns the elapsed milliseconds between the two events.</summary>
    public float Stop()
    {
        _device.MakeCurrent();
        _device.Check(_device.Api.cuEventRecord(_stop, _device.Stream));
        _device.Check(_device.Api.cuEventSynchronize(_stop));
        float ms = 0;
        _device.Check(_device.Api.cuEventElapsedTime(&ms, _start, _stop));
        return ms;
    }

    /// <summary>Destroys the events and drops the timer's reference on the device. Idempotent.</summary>
    public void Dispose()
    {
        if (_start == 0)
            return;
        var (start, stop) = (_start, _stop);
        _start = _stop = 0;
        _device.TryRelease(() => _device.MakeCurrent(), "cuCtxSetCurrent (destroying events)");
        if (_device.Api.cuEventDestroy(start) is int a && a != 0)
            _device.DisposeFailure("cuEventDestroy_v2", a);
        if (_device.Api.cuEventDestroy(stop) is int b && b != 0)
            _device.DisposeFailure("cuEventDestroy_v2", b);
        _device.Lifetime.DangerousRelease();
    }
}
