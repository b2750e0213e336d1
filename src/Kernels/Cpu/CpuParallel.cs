using System.Runtime.CompilerServices;

namespace BlockDance.Kernels.Cpu;

/// <summary>A body of work over a range of indices, run by <see cref="CpuParallel.For{T}"/>.</summary>
internal interface IRangeJob
{
    void Execute(int start, int end);
}

/// <summary>
/// An allocation-free parallel loop over a fixed pool of worker threads. <see cref="Parallel.For(int, int, Action{int})"/>
/// allocates closures and task state on every call; the sampling loop must not allocate, so jobs here are structs passed
/// by reference to a static generic trampoline through a function pointer. The calling thread takes the first range
/// and waits for the others; calls from several threads at once are serialised.
/// </summary>
internal static unsafe class CpuParallel
{
    private static readonly object Gate = new();
    [ThreadStatic] private static bool t_inJob;   // a loop started from inside a job runs inline (no nested fan-out)
    private static Worker[] _workers = [];
    private static int _threads = Math.Max(1, Environment.ProcessorCount);

    /// <summary>Threads used by a loop, the caller included. Defaults to the processor count.</summary>
    public static int ThreadCount
    {
        get => _threads;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            lock (Gate)
                _threads = value;
        }
    }

    /// <summary>Runs <c>job.Execute</c> over <c>[0, count)</c>, split into at most <see cref="ThreadCount"/> contiguous ranges of at least <paramref name="minChunk"/>.</summary>
    public static void For<T>(int count, ref T job, int minChunk = 1) where T : struct, IRangeJob
    {
        if (count <= 0)
            return;
        int parts = Math.Min(_threads, Math.Max(1, count / Math.Max(1, minChunk)));
        if (parts == 1 || t_inJob)
        {
            job.Execute(0, count);
            return;
        }
        lock (Gate)
        {
            EnsureWorkers(parts - 1);
            // SAFETY: the job lives on the caller's stack, and this method does not return before every worker is done with it.
            void* state = Unsafe.AsPointer(ref job);
            delegate*<void*, int, int, void> body = &Run<T>;
            var done = new CountdownSlim(parts - 1);
            for (int p = 1; p < parts; p++)
                _workers[p - 1].Start(body, state, Range(count, parts, p), Range(count, parts, p + 1), &done);
            Exception? error = null;
            t_inJob = true;
            try
            {
                job.Execute(0, Range(count, parts, 1));
            }
            catch (Exception e)
            {
                error = e;
            }
            finally
            {
                t_inJob = false;
            }
            done.Wait();
            for (int p = 1; p < parts; p++)
                error ??= _workers[p - 1].TakeError();
            // The first failure, rethrown as itself (with its stack), whichever thread ran it.
            if (error is not null)
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        }
    }

    private static int Range(int count, int parts, int p) => (int)((long)count * p / parts);

    private static void Run<T>(void* state, int start, int end) where T : struct, IRangeJob =>
        Unsafe.AsRef<T>(state).Execute(start, end);

    private static void EnsureWorkers(int n)
    {
        if (_workers.Length >= n)
            return;
        var workers = new Worker[n];
        Array.Copy(_workers, workers, _workers.Length);
        for (int i = _workers.Length; i < n; i++)
            workers[i] = new Worker(i);
        _workers = workers;
    }

    /// <summary>A countdown that the caller spins on, then sleeps on; lives on the caller's stack.</summary>
    private struct CountdownSlim(int count)
    {
        private int _remaining = count;

        public void Signal() => Interlocked.Decrement(ref _remaining);

        public readonly void Wait()
        {
            // Spin (the other parts usually finish within microseconds of ours), yielding, then sleeping on a busy machine.
            var spin = new SpinWait();
            while (Volatile.Read(in _remaining) > 0)
                spin.SpinOnce();
        }
    }

    private sealed class Worker
    {
        private readonly SemaphoreSlim _start = new(0);
        private delegate*<void*, int, int, void> _body;
        private void* _state;
        private int _begin, _end;
        private CountdownSlim* _done;
        private Exception? _error;

        public Worker(int index)
        {
            var thread = new Thread(Loop) { IsBackground = true, Name = $"blockdance-cpu-{index + 1}" };
            thread.Start();
        }

        public void Start(delegate*<void*, int, int, void> body, void* state, int begin, int end, CountdownSlim* done)
        {
            _body = body;
            _state = state;
            _begin = begin;
            _end = end;
            _done = done;
            _start.Release();
        }

        public Exception? TakeError()
        {
            var e = _error;
            _error = null;
            return e;
        }

        private void Loop()
        {
            t_inJob = true;
            while (true)
            {
                _start.Wait();
                try
                {
                    _body(_state, _begin, _end);
                }
                catch (Exception e)
                {
                    _error = e;
                }
                _done->Signal();
            }
        }
    }
}
