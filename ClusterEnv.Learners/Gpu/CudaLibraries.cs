using System.Runtime.InteropServices;

namespace ClusterEnv.Learners.Gpu;

/// <summary>
/// Finds NVIDIA's shared libraries (cuBLAS, NCCL) the way users install them: a folder named by
/// <c>CLUSTERENV_CUDA_LIBS</c>, the folders of <c>LD_LIBRARY_PATH</c>, the ldconfig cache, and Python's nvidia-* wheels
/// (site-packages/nvidia/*/lib) — in that order. A miss names every place looked in and how to fix it.
/// </summary>
public static class CudaLibraries
{
    /// <summary>Loads the first of <paramref name="fileNames"/> found; <paramref name="what"/> names the library in errors.</summary>
    /// <exception cref="DllNotFoundException">None was found; the message lists where it looked.</exception>
    public static IntPtr Load(string what, IReadOnlyList<string> fileNames)
    {
        var tried = new List<string>();
        foreach (string path in Candidates(fileNames))
        {
            tried.Add(path);
            if (NativeLibrary.TryLoad(path, out var handle)) return handle;
        }
        throw new DllNotFoundException(
            $"Could not load {what} ({string.Join(" or ", fileNames)}). Looked in: {(tried.Count == 0 ? "nowhere (no candidate paths)" : string.Join(", ", tried.Distinct()))}. " +
            "Install it (Debian: the CUDA toolkit's packages; Python: pip install nvidia-cublas / nvidia-nccl-cu13), or point CLUSTERENV_CUDA_LIBS at the folder " +
            "that holds it, or add that folder to LD_LIBRARY_PATH.");
    }

    /// <summary>The paths <see cref="Load"/> tries, in order (a bare file name last, for the loader's own search).</summary>
    public static IEnumerable<string> Candidates(IReadOnlyList<string> fileNames)
    {
        var folders = new List<string>();
        if (Environment.GetEnvironmentVariable("CLUSTERENV_CUDA_LIBS") is { Length: > 0 } custom) folders.AddRange(custom.Split(':', StringSplitOptions.RemoveEmptyEntries));
        if (Environment.GetEnvironmentVariable("LD_LIBRARY_PATH") is { Length: > 0 } ld) folders.AddRange(ld.Split(':', StringSplitOptions.RemoveEmptyEntries));
        foreach (string name in fileNames)
        {
            foreach (string folder in folders) yield return Path.Combine(folder, name);
            foreach (string cached in LdconfigCache(name)) yield return cached;
            foreach (string wheel in PythonWheels(name)) yield return wheel;
        }
        foreach (string name in fileNames) yield return name;
    }

    // ldconfig -p lines: "\tlibnccl.so.2 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libnccl.so.2".
    private static IEnumerable<string> LdconfigCache(string name)
    {
        string output;
        try
        {
            using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("/sbin/ldconfig", "-p") { RedirectStandardOutput = true, UseShellExecute = false });
            if (p is null) yield break;
            output = p.StandardOutput.ReadToEnd();
            p.WaitForExit(5000);
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            yield break;
        }
        foreach (string line in output.Split('\n'))
        {
            string t = line.Trim();
            if (!t.StartsWith(name + " ", StringComparison.Ordinal)) continue;
            int arrow = t.IndexOf("=> ", StringComparison.Ordinal);
            if (arrow > 0) yield return t[(arrow + 3)..].Trim();
        }
    }

    // pip's nvidia-* packages put the libraries in site-packages/nvidia/<part>/lib.
    private static IEnumerable<string> PythonWheels(string name)
    {
        foreach (string root in new[] { "/usr/local/lib", "/usr/lib", "/opt/conda/lib" })
        {
            if (!Directory.Exists(root)) continue;
            IEnumerable<string> pythons;
            try { pythons = Directory.GetDirectories(root, "python3*"); }
            catch (UnauthorizedAccessException) { continue; }
            foreach (string py in pythons)
                foreach (string site in new[] { "site-packages", "dist-packages" })
                {
                    string nvidia = Path.Combine(py, site, "nvidia");
                    if (!Directory.Exists(nvidia)) continue;
                    foreach (string part in Directory.GetDirectories(nvidia))
                    {
                        string path = Path.Combine(part, "lib", name);
                        if (File.Exists(path)) yield return path;
                    }
                }
        }
    }
}
