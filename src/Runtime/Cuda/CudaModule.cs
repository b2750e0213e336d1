using System.Text;

namespace BlockDance.Runtime.Cuda;

/// <summary>A loaded CUBIN or PTX image and its kernel functions (CUfunction handles), unloaded with the context current.</summary>
internal sealed unsafe class CudaModule : IDisposable
{
    private readonly CudaDevice _device;
    private nint _module;

    public CudaModule(CudaDevice device, ReadOnlySpan<byte> image, string name)
    {
        _device = device;
        Name = name;
        device.MakeCurrent();
        // PTX must be NUL-terminated; a CUBIN is an ELF image and ignores the extra byte.
        var buffer = new byte[image.Length + 1];
        image.CopyTo(buffer);
        nint module = 0;
        fixed (byte* p = buffer)
            device.Check(device.Api.cuModuleLoadData(&module, p));
        _module = module;
    }

    public string Name { get; }

    /// <summary>The function <paramref name="kernel"/> (an <c>extern "C"</c> name); a missing one throws naming the module.</summary>
    public nint Function(string kernel)
    {
        ObjectDisposedException.ThrowIf(_module == 0, this);
        _device.MakeCurrent();
        nint f = 0;
        fixed (byte* p = Encoding.UTF8.GetBytes(kernel + "\0"))
            _device.Check(_device.Api.cuModuleGetFunction(&f, _module, p), $"cuModuleGetFunction({Name}, \"{kernel}\")");
        return f;
    }

    public void Dispose()
    {
        if (_module == 0)
            return;
        nint module = _module;
        _module = 0;
        _device.TryRelease(() => _device.MakeCurrent(), "cuCtxSetCurrent (unloading a module)");
        if (_device.Api.cuModuleUnload(module) is int r && r != 0)
            _device.DisposeFailure($"cuModuleUnload({Name})", r);
    }
}

/// <summary>A CUDA event pair for timing work on the device's stream (timing only; never used to order work).</summary>
internal sealed unsafe class CudaTimer : IDisposable
{
    private readonly CudaDevice _device;
    private nint _start, _stop;

    public CudaTimer(CudaDevice device)
    {
        _device = device;
        device.MakeCurrent();
        nint a = 0, b = 0;
        device.Check(device.Api.cuEventCreate(&a, Native.CudaDriverApi.EventDefault));
        device.Check(device.Api.cuEventCreate(&b, Native.CudaDriverApi.EventDefault));
        (_start, _stop) = (a, b);
    }

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
    }
}
