using Ddpm.Schedules;

namespace Ddpm.Tests.Schedules;

public class NoiseScheduleTests
{
    [Fact]
    public void LinearScheduleMatchesThePaper()
    {
        var s = NoiseSchedule.Linear();
        Assert.Equal(1000, s.Timesteps);
        Assert.Equal(1e-4, s.Betas[0], 15);
        Assert.Equal(0.02, s.Betas[999], 15);
        Assert.Equal(1e-4 + (0.02 - 1e-4) * 500 / 999, s.Betas[500], 15);
        // ᾱ_T for the paper's schedule is about 4.0358e-5 (product computed independently in log space).
        double logAbar = 0;
        for (int i = 0; i < 1000; i++) logAbar += Math.Log(1 - (1e-4 + (0.02 - 1e-4) * i / 999));
        Assert.Equal(Math.Exp(logAbar), s.AlphasCumprod[999], 12);
        Assert.InRange(s.AlphasCumprod[999], 4.0e-5, 4.1e-5);
    }
}
