using Ddpm.Cli.Commands;

namespace Ddpm.Tests.Cli;

public class TrainCommandTests
{
    [Fact]
    public void TheProgressClockDoesNotWrapAtADay()
    {
        Assert.Equal("25:30:07", TrainCommand.Clock(TimeSpan.FromSeconds(25 * 3600 + 30 * 60 + 7)));
        Assert.Equal("0:00:59", TrainCommand.Clock(TimeSpan.FromSeconds(59)));
    }
}
