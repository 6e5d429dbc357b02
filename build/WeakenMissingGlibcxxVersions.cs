// MSBuild inline task (RoslynCodeTaskFactory): makes TorchSharp's native wrapper load on distributions whose
// libstdc++ is older than the GCC that built it (Debian 12 stops at GLIBCXX_3.4.30; libLibTorchSharp.so 0.107.0
// asks for GLIBCXX_3.4.32 for one unused anchor symbol). See shared/PLATFORM.md §2.
//
// For every version that the library needs from libstdc++.so.6 and that the system's libstdc++ does not define,
// the Vernaux entry in .gnu.version_r gets VER_FLG_WEAK (0x2): the dynamic loader then accepts its absence.
// Where libstdc++ is new enough nothing is written. The file is replaced by rename (never written through a
// hard link into the NuGet cache) and keeps its timestamp, so incremental copies stay up to date.
//
// A folder that is shipped to other machines (a .NET tool's publish output, packed into its package) cannot rely on
// the libstdc++ of the machine that built it: WeakenAbove="GLIBCXX_3.4.30" (Debian 12's newest) also weakens every
// newer GLIBCXX version, whatever the building machine has. A weak version that the loading system does define binds
// as usual, so this is harmless on newer distributions.
//
// Used by the repository's Directory.Build.targets (through build/Ddpm.targets) and, packed under buildTransitive/,
// by every project that references the Ddpm package.
#nullable enable
using System;
using System.Runtime.InteropServices;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class WeakenMissingGlibcxxVersions : Task
{
    [Required] public ITaskItem[] Libraries { get; set; } = Array.Empty<ITaskItem>();

    /// <summary>Optional, e.g. "GLIBCXX_3.4.30": GLIBCXX versions newer than this one are weakened even where the system defines them.</summary>
    public string? WeakenAbove { get; set; }

    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlgWeak = 0x2;

    private static readonly string[] LibStdCxxCandidates =
    {
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
    };

    public override bool Execute()
    {
        bool linux = RuntimeInformation.IsOSPlatform(OSPlatform.Linux);
        Version? above = ParseGlibcxx(WeakenAbove);
        if (!string.IsNullOrEmpty(WeakenAbove) && above is null)
        {
            Log.LogWarning($"WeakenAbove '{WeakenAbove}' is not a GLIBCXX_x.y.z version; ignored.");
        }
        if (!linux && above is null) return true;
        string? systemLib = linux ? LibStdCxxCandidates.FirstOrDefault(File.Exists) : null;
        byte[] systemBytes = systemLib is null ? Array.Empty<byte>() : File.ReadAllBytes(systemLib);
        foreach (var item in Libraries)
        {
            string path = item.ItemSpec;
            if (!File.Exists(path)) continue;
            try
            {
                Patch(path, version =>
                {
                    if (above is not null && ParseGlibcxx(version) is Version v && v > above) return true;
                    return linux && !(systemBytes.Length > 0 && Contains(systemBytes, Encoding.ASCII.GetBytes(version + "\0")));
                });
            }
            catch (Exception e)
            {
                Log.LogWarning($"Could not inspect {path}: {e.Message}");
            }
        }
        return true;
    }

    private void Patch(string path, Func<string, bool> mustWeaken)
    {
        byte[] elf = File.ReadAllBytes(path);
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[4] != 2 || elf[5] != 1) return; // ELF64 LE only
        ulong shoff = BitConverter.ToUInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A);
        int shnum = BitConverter.ToUInt16(elf, 0x3C);
        var weakened = new List<string>();
        for (int s = 0; s < shnum; s++)
        {
            int sh = (int)shoff + s * shentsize;
            if (BitConverter.ToUInt32(elf, sh + 4) != ShtGnuVerneed) continue;
            long secOffset = (long)BitConverter.ToUInt64(elf, sh + 0x18);
            int link = (int)BitConverter.ToUInt32(elf, sh + 0x28);
            int count = (int)BitConverter.ToUInt32(elf, sh + 0x2C);
            long strtab = (long)BitConverter.ToUInt64(elf, (int)shoff + link * shentsize + 0x18);
            long vn = secOffset;
            for (int i = 0; i < count; i++)
            {
                int auxCount = BitConverter.ToUInt16(elf, (int)vn + 2);
                string file = ReadString(elf, strtab + BitConverter.ToUInt32(elf, (int)vn + 4));
                long aux = vn + BitConverter.ToUInt32(elf, (int)vn + 8);
                for (int a = 0; a < auxCount; a++)
                {
                    ushort flags = BitConverter.ToUInt16(elf, (int)aux + 4);
                    string name = ReadString(elf, strtab + BitConverter.ToUInt32(elf, (int)aux + 8));
                    if (file == "libstdc++.so.6" && (flags & VerFlgWeak) == 0 && mustWeaken(name))
                    {
                        BitConverter.GetBytes((ushort)(flags | VerFlgWeak)).CopyTo(elf, (int)aux + 4);
                        weakened.Add(name);
                    }
                    aux += BitConverter.ToUInt32(elf, (int)aux + 12);
                }
                vn += BitConverter.ToUInt32(elf, (int)vn + 12);
            }
        }
        if (weakened.Count == 0) return;

        DateTime stamp = File.GetLastWriteTimeUtc(path);
        string temp = path + ".weakening.tmp";
        File.WriteAllBytes(temp, elf);
        File.SetLastWriteTimeUtc(temp, stamp);
        File.Replace(temp, path, null); // rename: a hard link to the NuGet cache is replaced, not written through
        string why = string.IsNullOrEmpty(WeakenAbove) ? "system libstdc++ lacks them" : $"system libstdc++ lacks them or they are newer than {WeakenAbove}";
        Log.LogMessage(MessageImportance.High, $"Ddpm: marked {string.Join(", ", weakened)} weak in {path} ({why})");
    }

    /// <summary>"GLIBCXX_3.4.32" as 3.4.32; null for anything else (CXXABI_..., empty).</summary>
    private static Version? ParseGlibcxx(string? version) =>
        version is not null && version.StartsWith("GLIBCXX_", StringComparison.Ordinal) && Version.TryParse(version.Substring(8), out var v) ? v : null;

    private static string ReadString(byte[] bytes, long offset)
    {
        int end = (int)offset;
        while (bytes[end] != 0) end++;
        return Encoding.ASCII.GetString(bytes, (int)offset, end - (int)offset);
    }

    private static bool Contains(byte[] haystack, byte[] needle)
    {
        for (int i = 0; i + needle.Length <= haystack.Length; i++)
        {
            if (haystack[i] != needle[0]) continue;
            int j = 1;
            while (j < needle.Length && haystack[i + j] == needle[j]) j++;
            if (j == needle.Length) return true;
        }
        return false;
    }
}
