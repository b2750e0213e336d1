using System.Runtime.InteropServices;

namespace BlockDance.Runtime.IO;

/// <summary>What a path names in the file system.</summary>
internal enum FileKind
{
    /// <summary>Nothing: the path does not exist (or a folder on the way is missing or is a file).</summary>
    Missing,

    /// <summary>A regular file.</summary>
    Regular,

    /// <summary>A folder.</summary>
    Directory,

    /// <summary>A symbolic link (only when links are not followed).</summary>
    SymbolicLink,

    /// <summary>A character device such as <c>/dev/null</c> or <c>/dev/full</c>.</summary>
    CharacterDevice,

    /// <summary>A block device such as a disk.</summary>
    BlockDevice,

    /// <summary>A named pipe (FIFO, <c>mkfifo</c>).</summary>
    Fifo,

    /// <summary>A Unix domain socket.</summary>
    Socket,
}

/// <summary>
/// The kind of a path, from <c>statx(2)</c> on Linux (the one portable <c>stat</c> layout across architectures), so a
/// device, a FIFO or a socket is told apart from a regular file; .NET's own file APIs report all of those as files. On
/// other systems only regular files, folders and missing paths are told apart.
/// </summary>
internal static partial class FileKinds
{
    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const uint StatxType = 0x1;
    private const int ModeOffset = 28;   // struct statx: stx_mask, stx_blksize, stx_attributes (u64), stx_nlink, stx_uid, stx_gid, stx_mode (u16)
    private const int StatxSize = 256;

    /// <summary>The kind of <paramref name="path"/>; with <paramref name="followLinks"/> a link reports what it points to.</summary>
    /// <exception cref="IOException">The path cannot be examined (permission denied on a folder on the way, a link loop).</exception>
    public static FileKind Of(string path, bool followLinks = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!OperatingSystem.IsLinux())
            return Directory.Exists(path) ? FileKind.Directory : File.Exists(path) ? FileKind.Regular : FileKind.Missing;
        int mode = Mode(path, followLinks ? 0 : AtSymlinkNoFollow, out int errno);
        if (mode < 0)
        {
            const int ENOENT = 2, ENOTDIR = 20;
            if (errno is ENOENT or ENOTDIR)
                return FileKind.Missing;
            throw new IOException($"cannot examine '{path}': {Marshal.GetPInvokeErrorMessage(errno)}");
        }
        return (mode & 0xF000) switch
        {
            0x8000 => FileKind.Regular,
            0x4000 => FileKind.Directory,
            0xA000 => FileKind.SymbolicLink,
            0x2000 => FileKind.CharacterDevice,
            0x6000 => FileKind.BlockDevice,
            0x1000 => FileKind.Fifo,
            0xC000 => FileKind.Socket,
            _ => throw new IOException($"'{path}' has an unknown file type (mode 0x{mode:X})"),
        };
    }

    /// <summary>
    /// Checks that <paramref name="path"/> names an existing file to read, with a message that names the path and,
    /// when given, the option it came from: <c>--weights: no such file: x.safetensors</c>,
    /// <c>--dump: 'd' is a folder, not a file</c> (rather than the operating system's "access denied").
    /// </summary>
    /// <param name="path">The file to read.</param>
    /// <param name="what">Prefix of the messages, e.g. the command-line option; null for none.</param>
    /// <returns><paramref name="path"/>.</returns>
    /// <exception cref="FileNotFoundException">Nothing exists at the path.</exception>
    /// <exception cref="IOException">The path is a folder.</exception>
    public static string RequireFile(string path, string? what = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        string prefix = what is null ? "" : what + ": ";
        if (path.Length == 0)
            throw new FileNotFoundException($"{prefix}the file name is empty");
        return Of(path) switch
        {
            FileKind.Missing => throw new FileNotFoundException($"{prefix}no such file: {path}", path),
            FileKind.Directory => throw new IOException($"{prefix}'{path}' is a folder, not a file"),
            _ => path,
        };
    }

    /// <summary>A short description for messages: "a folder", "a character device", ...</summary>
    public static string Describe(FileKind kind) => kind switch
    {
        FileKind.Missing => "missing",
        FileKind.Regular => "a regular file",
        FileKind.Directory => "a folder",
        FileKind.SymbolicLink => "a symbolic link",
        FileKind.CharacterDevice => "a character device",
        FileKind.BlockDevice => "a block device",
        FileKind.Fifo => "a named pipe (FIFO)",
        FileKind.Socket => "a socket",
        _ => kind.ToString(),
    };

    private static unsafe int Mode(string path, int flags, out int errno)
    {
        byte* buffer = stackalloc byte[StatxSize];
        if (Statx(AtFdCwd, path, flags, StatxType, buffer) != 0)
        {
            errno = Marshal.GetLastPInvokeError();
            return -1;
        }
        errno = 0;
        return *(ushort*)(buffer + ModeOffset);
    }

    [LibraryImport("libc.so.6", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int Statx(int dirfd, string path, int flags, uint mask, byte* buffer);
}
