using System.Text.Json;
using Ddpm.Sampling;
using Ddpm.Schedules;
using Ddpm.Tests.Support;

namespace Ddpm.Tests.Sampling;

/// <summary>
/// Every element of every timestep list. Linspace, leading and trailing against the lists that diffusers' set_timesteps
/// computes, made by numpy (Fixtures/timestep_spacings.py wrote Fixtures/timestep-spacings.json with Debian's numpy:
/// np.round rounds halves to even, np.arange strides in floating point); log-SNR and Karras against a float64
/// evaluation of their formulas.
/// </summary>
public class TimestepSpacingTests
{
    private sealed record SpacingCase(int T, int N, int[] Linspace, int[] Leading, int[] Trailing);

    public static TheoryData<int, int> Cases()
    {
        var data = new TheoryData<int, int>();
        foreach (var c in Fixture()) data.Add(c.T, c.N);
        return data;
    }

    private static IReadOnlyList<SpacingCase> Fixture() => LoadedFixture.Value;

    private static readonly Lazy<IReadOnlyList<SpacingCase>> LoadedFixture = new(ReadFixture);

    private static IReadOnlyList<SpacingCase> ReadFixture()
    {
        var path = Path.Combine(ShippedModels.RepositoryRoot, "tests", "Ddpm.Tests", "Fixtures", "timestep-spacings.json");
        using var document = JsonDocument.Parse(File.ReadAllText(path));
        int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();
        return document.RootElement.GetProperty("cases").EnumerateArray()
            .Select(c => new SpacingCase(c.GetProperty("T").GetInt32(), c.GetProperty("n").GetInt32(),
                Ints(c.GetProperty("linspace")), Ints(c.GetProperty("leading")), Ints(c.GetProperty("trailing"))))
            .ToArray();
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void UniformSpacingsEqualDiffusersLists(int T, int n)
    {
        var c = Fixture().Single(x => x.T == T && x.N == n);
        // Our lists are ascending; diffusers' descending.
        Assert.Equal(c.Leading, TimestepSelection.Select(T, n, TimestepSpacing.Leading).Reverse());
        Assert.Equal(c.Trailing, TimestepSelection.Select(T, n, TimestepSpacing.Trailing).Reverse());
        var linspace = TimestepSelection.Select(T, n, TimestepSpacing.Linspace).Reverse().ToArray();
        if (n == 1)
        {
            // The one deliberate difference: numpy's linspace(0, T − 1, 1) is [0], a single step from pure noise at the
            // cleanest timestep. We take the one step from T − 1, where x_T ~ N(0, I) actually lives.
            Assert.Equal(new[] { 0 }, c.Linspace);
            Assert.Equal(new[] { T - 1 }, linspace);
        }
        else
        {
            Assert.Equal(c.Linspace, linspace);
        }
    }

    /// <summary>log σ_t with σ = √((1 − ᾱ_t)/ᾱ_t), straight from the schedule's betas.</summary>
    private static double[] LogSigmas(NoiseSchedule schedule)
    {
        var result = new double[schedule.Timesteps];
        double alphaBar = 1;
        for (int t = 0; t < result.Length; t++)
        {
            alphaBar *= 1 - schedule.Betas[t];
            result[t] = 0.5 * Math.Log((1 - alphaBar) / alphaBar);
        }
        return result;
    }

    /// <summary>The target noise levels, descending: uniform in log σ (= −λ), or Karras et al. 2022 Eq. 5 with ρ = 7.</summary>
    private static double[] TargetLogSigmas(double[] logSigma, int n, bool karras)
    {
        double hi = logSigma[^1], lo = logSigma[0];
        return Enumerable.Range(0, n).Select(i =>
        {
            double u = n == 1 ? 0 : (double)i / (n - 1);
            if (!karras) return hi + u * (lo - hi);
            double sMax = Math.Pow(Math.Exp(hi), 1 / 7.0), sMin = Math.Pow(Math.Exp(lo), 1 / 7.0);
            return 7.0 * Math.Log(sMax + u * (sMin - sMax));
        }).ToArray();
    }

    [Theory]
    [InlineData(ScheduleKind.Linear, 10, false)]
    [InlineData(ScheduleKind.Linear, 50, true)]
    [InlineData(ScheduleKind.Cosine, 20, false)]
    [InlineData(ScheduleKind.Cosine, 25, true)]
    [InlineData(ScheduleKind.Linear, 3, true)]
    public void NoiseLevelSpacingsPickTheTimestepNearestEachTarget(ScheduleKind kind, int n, bool karras)
    {
        var schedule = new ScheduleConfig(kind).Build();
        var logSigma = LogSigmas(schedule);
        var targets = TargetLogSigmas(logSigma, n, karras);
        var chosen = TimestepSelection.Select(schedule.AlphasCumprod, n, karras ? TimestepSpacing.Karras : TimestepSpacing.LogSnr);
        Assert.Equal(n, chosen.Length);
        Assert.Equal(schedule.Timesteps - 1, chosen[^1]);
        Assert.Equal(0, chosen[0]);
        // The i-th largest target maps to the timestep nearest its fractional position on the piecewise-linear
        // interpolation of log σ over t. Where the schedule's log σ jumps (the cosine schedule's last steps, clipped at
        // β = 0.999) several targets round to one timestep; the spacing then keeps n distinct timesteps by moving the
        // later ones up by one and, at T − 1, back down: the expected list applies the same rule.
        var expected = new int[n];
        for (int i = 0; i < n; i++)
        {
            double target = targets[n - 1 - i];
            int above = Enumerable.Range(0, logSigma.Length).First(t => logSigma[t] >= target || t == logSigma.Length - 1);
            double position = above == 0 ? 0 : above - 1 + (target - logSigma[above - 1]) / (logSigma[above] - logSigma[above - 1]);
            expected[i] = (int)Math.Round(Math.Clamp(position, 0, logSigma.Length - 1), MidpointRounding.ToEven);
        }
        for (int i = 1; i < n; i++) expected[i] = Math.Max(expected[i], expected[i - 1] + 1);
        for (int i = n - 1; i >= 0; i--) expected[i] = Math.Min(expected[i], (i == n - 1 ? logSigma.Length : expected[i + 1]) - 1);
        Assert.Equal(expected, chosen);
        // Karras's steps are even in σ^{1/ρ}, so in log σ = ρ log σ^{1/ρ} their gaps grow as σ falls (d log σ = ρ ds/s):
        // from σ_max ≈ 157 to σ_min ≈ 0.01 on the linear schedule the lowest gap is about 4× the highest (1.9× at n = 3).
        double firstGap = logSigma[chosen[1]] - logSigma[chosen[0]], lastGap = logSigma[chosen[^1]] - logSigma[chosen[^2]];
        // (The cosine schedule is left out: its clipped last β makes log σ jump by 3.45 at t = T − 1.)
        if (kind != ScheduleKind.Linear) return;
        if (karras) Assert.True(firstGap > 1.5 * lastGap, $"Karras: gaps {firstGap:F3} at low noise, {lastGap:F3} at high noise");
        else Assert.InRange(firstGap / lastGap, 0.5, 2.0);
    }
}
