using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Data;

/// <summary>
/// The 2-D toy distributions of the normalising-flow and diffusion literature, as defined in FFJORD's
/// toy_data.py (Grathwohl et al. 2019; moons and swissroll there wrap scikit-learn's make_moons(noise=0.1) and
/// make_swiss_roll(noise=1.0)). FFJORD's versions span about [−4, 4]; every set here is FFJORD's divided by 4, so the
/// points lie in roughly [−1, 1], the range the image models see:
/// <list type="bullet">
/// <item><c>toy:moons</c>: two interleaved half circles, x ∈ [−0.75, 0.75], y ∈ [−0.3, 0.45], noise σ = 0.05.</item>
/// <item><c>toy:swissroll</c>: the spiral r = t, t ∈ [1.5π, 4.5π], scaled by 1/20 (radius ≤ 0.71), noise σ = 0.05.</item>
/// <item><c>toy:8gaussians</c>: 8 equal Gaussians centred on the circle of radius 1/1.414 at multiples of 45°, σ = 0.5/(1.414·4) ≈ 0.088.</item>
/// <item><c>toy:checkerboard</c>: uniform on the 8 black squares of a 4 × 4 board over [−1, 1)², squares of side 0.5,
/// the black ones being those with ⌊2x⌋ + ⌊2y⌋ even.</item>
/// </list>
/// Every random draw goes through the given generator, so a seed reproduces the points exactly.
/// </summary>
public static class ToyDatasets
{
    public const string Prefix = "toy:";

    public static IReadOnlyList<string> Names { get; } = new[] { "toy:moons", "toy:swissroll", "toy:8gaussians", "toy:checkerboard" };

    /// <summary>FFJORD's data lie in about [−4, 4]; dividing by this brings them to about [−1, 1].</summary>
    public const double Scale = 4.0;

    /// <summary>FFJORD divides the 8-Gaussians points by 1.414 (not exactly √2); kept for fidelity.</summary>
    public const double EightGaussiansDivisor = 1.414;

    /// <summary>True when <paramref name="name"/> names a toy set (known or not), i.e. starts with "toy:".</summary>
    public static bool IsToy(string name) => name.TrimStart().StartsWith(Prefix, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// <paramref name="n"/> points of toy set <paramref name="name"/> as an [n, 2] float32 tensor, drawn with
    /// <paramref name="generator"/>. Like any torch op, the result belongs to the caller's DisposeScope if there is one.
    /// </summary>
    public static Tensor Sample(string name, int n, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(generator);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        string key = name.Trim().ToLowerInvariant();
        if (!Names.Contains(key))
            throw new ArgumentException($"Unknown toy dataset '{name}'; known: {string.Join(", ", Names)}.", nameof(name));

        using var scope = NewDisposeScope();
        var points = key switch
        {
            "toy:moons" => Moons(n, generator),
            "toy:swissroll" => SwissRoll(n, generator),
            "toy:8gaussians" => EightGaussians(n, generator),
            _ => Checkerboard(n, generator),
        };
        return (points / Scale).to(ScalarType.Float32).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// make_moons(noise = 0.1) · 2 + (−1, −0.2). scikit-learn puts ⌊n/2⌋ points on evenly spaced angles of each moon;
    /// here each point picks its moon and angle at random, so every batch is an independent sample.
    /// </summary>
    private static Tensor Moons(int n, Generator g)
    {
        var outer = randint(0, 2, new long[] { n }, generator: g).eq(0);
        var t = rand(new long[] { n }, generator: g) * Math.PI;
        var noise = randn(new long[] { n, 2 }, generator: g) * 0.1;
        // Outer moon (cos t, sin t); inner moon (1 − cos t, 0.5 − sin t).
        var x = where(outer, t.cos(), 1.0 - t.cos());
        var y = where(outer, t.sin(), 0.5 - t.sin());
        var points = stack(new[] { x, y }, 1) + noise;
        return points * 2.0 + tensor(new float[] { -1f, -0.2f });
    }

    /// <summary>make_swiss_roll(noise = 1.0) keeping (x, z), divided by 5: t = 1.5π(1 + 2u), (t cos t, t sin t) + N(0, I).</summary>
    private static Tensor SwissRoll(int n, Generator g)
    {
        var t = (rand(new long[] { n }, generator: g) * 2.0 + 1.0) * (1.5 * Math.PI);
        var noise = randn(new long[] { n, 2 }, generator: g);
        var points = stack(new[] { t * t.cos(), t * t.sin() }, 1) + noise;
        return points / 5.0;
    }

    /// <summary>A centre chosen uniformly among (±1, 0), (0, ±1), (±1/√2, ±1/√2), times 4, plus N(0, 0.5² I); all divided by 1.414.</summary>
    private static Tensor EightGaussians(int n, Generator g)
    {
        double d = 1.0 / Math.Sqrt(2.0);
        var centres = tensor(new float[]
        {
            1, 0, -1, 0, 0, 1, 0, -1,
            (float)d, (float)d, (float)d, (float)-d, (float)-d, (float)d, (float)-d, (float)-d,
        }).reshape(8, 2) * 4.0;
        var index = randint(0, 8, new long[] { n }, generator: g);
        var noise = randn(new long[] { n, 2 }, generator: g) * 0.5;
        return (centres.index_select(0, index) + noise) / EightGaussiansDivisor;
    }

    /// <summary>
    /// x1 ~ U[−2, 2); x2 ~ U[0, 1) or U[−2, −1), shifted up by 1 when ⌊x1⌋ is odd; both times 2. The shift puts every
    /// point in a cell with ⌊x1⌋ + ⌊x2⌋ even: the black squares.
    /// </summary>
    private static Tensor Checkerboard(int n, Generator g)
    {
        var x1 = rand(new long[] { n }, generator: g) * 4.0 - 2.0;
        var x2 = rand(new long[] { n }, generator: g) - randint(0, 2, new long[] { n }, generator: g).to(ScalarType.Float32) * 2.0;
        // remainder follows the divisor's sign (like Python's %), so ⌊x1⌋ mod 2 is 0 or 1 also for negative x1.
        x2 = x2 + x1.floor().remainder(2.0);
        return stack(new[] { x1, x2 }, 1) * 2.0;
    }
}
