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
/// by reference to a static generic trampoline through a function pointer. The index range is cut into
/// <see cref="ChunksPerThread"/> contiguous chunks per thread, fixed by the count and the thread count alone, and the
/// threads (the caller among them) take chunks in turn from a shared counter, so a thread that the OS holds back
/// (a busy machine) or that wakes late costs its chunk, not half of the loop; which thread runs a chunk never changes
/// what the chunk computes. Calls from several threads at once are serialised.
/// </summary>
internal static unsafe class CpuParallel
{
    private static readonly object Gate = new();
    [ThreadStatic] private static bool t_inJob;   // a loop started from inside a job runs inline (no nested fan-out)
    private static Worker[] _workers = [];
    private static int _threads = Math.Max(1, Environment.ProcessorCount);

    /// <summary>Chunks per thread of a loop (at least <c>minChunk</c> indices each).</summary>
    public const int ChunksPerThread = 4;

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

    /// <summary>
    /// Runs <c>job.Execute</c> over <c>[0, count)</c> on at most <see cref="ThreadCount"/> threads, in contiguous chunks
    /// of at least <paramref name="minChunk"/> indices (<see cref="ChunksPerThread"/> per thread where the count allows).
    /// </summary>
    public static void For<T>(int count, ref T job, int minChunk = 1) where T : struct, IRangeJob
    {
        if (count <= 0)
            return;
        int most = Math.Max(1, count / Math.Max(1, minChunk));
        int parts = Math.Min(_threads, most);
        if (parts == 1 || t_inJob)
        {
            job.Execute(0, count);
            return;
        }
        int chunks = Math.Min(most, parts * ChunksPerThread);
        lock (Gate)
        {
            EnsureWorkers(parts - 1);
            // SAFETY: the job and the queue live on the caller's stack, and this method does not return before every
            // worker is done with them.
            var queue = new Queue { Body = &Run<T>, State = Unsafe.AsPointer(ref job), Count = count, Chunks = chunks };
            var done = new CountdownSlim(parts - 1);
            for (int p = 1; p < parts; p++)
                _workers[p - 1].Start(&queue, &done);
            Exception? error = null;
            t_inJob = true;
            try
            {
                queue.Drain();
            }
            catch (Exception e)
            {
                error = e;
                queue.Abandon();
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

    /// <summary>One loop's chunks, handed out in order from a shared counter; lives on the caller's stack.</summary>
    private struct Queue
    {
        public delegate*<void*, int, int, void> Body;
        public void* State;
        public int Count, Chunks, Next;

        /// <summary>Runs chunks until none is left.</summary>
        public void Drain()
        {
            int c;
            while ((c = Interlocked.Increment(ref Next) - 1) < Chunks)
                Body(State, Range(Count, Chunks, c), Range(Count, Chunks, c + 1));
        }

        /// <summary>After a failure: no more chunks for anyone.</summary>
        public void Abandon() => Interlocked.Exchange(ref Next, Chunks);
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
            // Spin (the other threads' last chunks usually end within microseconds of ours), then yield; never
            // Thread.Sleep(1), which SpinWait otherwise reaches after a few dozen spins and which costs a millisecond.
            var spin = new SpinWait();
            while (Volatile.Read(in _remaining) > 0)
                spin.SpinOnce(sleep1Threshold: -1);
        }
    }

    /// <summary>
    /// How long an idle worker spins for the next loop before it blocks: a forward's row-wise ops run inline on the
    /// caller between parallel loops for tens of microseconds, and a blocked worker costs 30–40 µs to wake
    /// (<c>CpuBench regions</c>: a loop after 100 µs of the caller alone 31.5 → 4.8 µs), so the worker spins through
    /// such gaps, as OpenMP's and ONNX Runtime's pools do (DiT-S/2's forward about 1 % faster).
    /// </summary>
    private static readonly long SpinTicks = System.Diagnostics.Stopwatch.Frequency * 200 / 1_000_000;

    private sealed class Worker
    {
        private readonly SemaphoreSlim _wake = new(0);
        private Queue* _queue;
        private CountdownSlim* _done;
        private Exception? _error;
        private int _generation, _sleeping;   // loops started; whether the thread is about to block or blocked

        public Worker(int index)
        {
            var thread = new Thread(Loop) { IsBackground = true, Name = $"blockdance-cpu-{index + 1}" };
            thread.Start();
        }

        public void Start(Queue* queue, CountdownSlim* done)
        {
            _queue = queue;
            _done = done;
            // A full fence on each side (here and in Loop) so that either the worker sees the new generation before it
            // blocks or this call sees that it blocks and wakes it (then perhaps once too often: Loop checks again).
            Interlocked.Increment(ref _generation);
            if (Volatile.Read(ref _sleeping) != 0)
                _wake.Release();
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
            int seen = 0;
            while (true)
            {
                long spinUntil = System.Diagnostics.Stopwatch.GetTimestamp() + SpinTicks;
                while (Volatile.Read(ref _generation) == seen)
                {
                    if (System.Diagnostics.Stopwatch.GetTimestamp() < spinUntil)
                    {
                        Thread.SpinWait(8);
                        continue;
                    }
                    Interlocked.Exchange(ref _sleeping, 1);
                    if (Volatile.Read(ref _generation) == seen)
                        _wake.Wait();
                    Interlocked.Exchange(ref _sleeping, 0);
                }
                seen = Volatile.Read(ref _generation);
                try
                {
                    _queue->Drain();
                }
                catch (Exception e)
                {
                    _error = e;
                    _queue->Abandon();
                }
                _done->Signal();
            }
        }
    }
}
