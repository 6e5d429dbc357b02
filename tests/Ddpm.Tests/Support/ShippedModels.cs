namespace Ddpm.Tests.Support;

/// <summary>Paths of the models shipped under models/ in the checkout the tests were built from.</summary>
public static class ShippedModels
{
    /// <summary>The checkout's root: the first directory above the test assembly that holds Ddpm.slnx.</summary>
    public static string RepositoryRoot { get; } = FindRoot();

    /// <summary>models/fid-fashion-mnist: the feature network of FID on Fashion-MNIST (ddpm fid-net train).</summary>
    public static string FidFashionMnist => Path.Combine(RepositoryRoot, "models", "fid-fashion-mnist");

    /// <summary>models/fashion-mnist and models/fashion-mnist-cond: the shipped unconditional and class-conditional models.</summary>
    public static string FashionMnist => Path.Combine(RepositoryRoot, "models", "fashion-mnist");
    public static string FashionMnistConditional => Path.Combine(RepositoryRoot, "models", "fashion-mnist-cond");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Ddpm.slnx")))
                return dir.FullName;
        throw new InvalidOperationException($"No Ddpm.slnx above {AppContext.BaseDirectory}: run the tests from a checkout.");
    }
}
