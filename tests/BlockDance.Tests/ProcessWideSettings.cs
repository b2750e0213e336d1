using Xunit;

namespace BlockDance.Tests;

/// <summary>Tests that change process-wide state (thread counts, emulator schedules) run in this collection, one at a time and alone.</summary>
[CollectionDefinition(nameof(ProcessWideSettings), DisableParallelization = true)]
public sealed class ProcessWideSettings;
