using Xunit.Abstractions;
using Xunit.Sdk;

[assembly: TestCollectionOrderer("Ddpm.Tests.Support.SeededOrder", "Ddpm.Tests")]
[assembly: TestCaseOrderer("Ddpm.Tests.Support.SeededOrder", "Ddpm.Tests")]

namespace Ddpm.Tests.Support;

/// <summary>
/// Runs the test collections, and the tests inside each class, in an order shuffled by the integer in
/// DDPM_TEST_ORDER (unset: xunit's own order). A suite that passes under two seeds does not lean on what an earlier
/// test left behind (the global generator, environment variables, files):
/// <c>DDPM_TEST_ORDER=1 dotnet test -c Release</c>, then <c>DDPM_TEST_ORDER=2 ...</c>.
/// </summary>
public sealed class SeededOrder : ITestCaseOrderer, ITestCollectionOrderer
{
    public const string Variable = "DDPM_TEST_ORDER";

    private static int? Seed => int.TryParse(Environment.GetEnvironmentVariable(Variable), out int seed) ? seed : null;

    public IEnumerable<TTestCase> OrderTestCases<TTestCase>(IEnumerable<TTestCase> testCases) where TTestCase : ITestCase =>
        Shuffle(testCases, t => t.UniqueID);

    public IEnumerable<ITestCollection> OrderTestCollections(IEnumerable<ITestCollection> testCollections) =>
        Shuffle(testCollections, c => c.DisplayName);

    /// <summary>Sorted by key, then Fisher–Yates with the seed: the same seed gives the same order on any machine.</summary>
    private static IEnumerable<T> Shuffle<T>(IEnumerable<T> items, Func<T, string> key)
    {
        if (Seed is not int seed) return items;
        var list = items.OrderBy(key, StringComparer.Ordinal).ToList();
        var random = new Random(seed);
        for (int i = list.Count - 1; i > 0; i--)
        {
            int j = random.Next(i + 1);
            (list[i], list[j]) = (list[j], list[i]);
        }
        return list;
    }
}
