using Ddpm.Generation;
using Ddpm.Sampling;
using Ddpm.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Generation;

/// <summary>The library's sampling job, as a C# user or the web server calls it: the same samples as the scheduler loop, labels, frames, progress, cancellation and request errors.</summary>
public class SamplingPipelineTests
{
    [Fact]
    public void TheJobDrawsWhatTheSchedulerLoopDrawsFromTheSameSeed()
    {
        using var scope = NewDisposeScope();
        using var model = DiffusionModel.Load(ShippedModels.FashionMnist);
        var reports = new List<JobProgress>();
        using var result = SamplingPipeline.Run(model, new SamplingRequest(new SamplerChoice(SamplerKind.Ddim, Steps: 3), Count: 3, Batch: 2, Seed: 11),
            new InlineProgress<JobProgress>(reports.Add));
        // By hand: one generator, two batches, x_T of each drawn as the batch starts.
        using var scheduler = SamplerFactory.Create(model.Config.Diffusion, new SamplerSettings(SamplerKind.Ddim, 3));
        var generator = new Generator(11);
        var first = DiffusionSampler.Sample(scheduler, model.Denoising.AsDenoiser(), new long[] { 2, 1, 28, 28 }, generator);
        var second = DiffusionSampler.Sample(scheduler, model.Denoising.AsDenoiser(), new long[] { 1, 1, 28, 28 }, generator);
        Assert.Equal(0.0, Numerics.MaxAbs(result.Samples - cat(new[] { first, second }, 0)));
        Assert.Null(result.Labels);
        Assert.Equal(3, result.NetworkCalls);
        // Progress counts network calls over both batches, in one phase, ending at the total.
        Assert.Single(reports.Select(r => r.Phase).Distinct());
        Assert.Equal(6, reports[^1].Total);
        Assert.Equal(6, reports[^1].Done);
    }

    [Fact]
    public void EveryClassGivesBlocksOfLabelsAndFramesKeepTheChainOfTheFirstSamples()
    {
        using var scope = NewDisposeScope();
        using var model = DiffusionModel.Load(ShippedModels.FashionMnistConditional);
        var request = new SamplingRequest(new SamplerChoice(SamplerKind.Ddim, Steps: 4), Count: 2, Batch: 8, Seed: 1,
            new ConditioningRequest(AllClasses: true), new FrameCapture(Samples: 3, MaxFrames: 3));
        using var result = SamplingPipeline.Run(model, request);
        Assert.Equal(20, result.Samples.shape[0]);
        Assert.Equal(Enumerable.Range(0, 20).Select(i => (long)(i / 2)).ToArray(), result.Labels!.data<long>().ToArray());
        Assert.Equal(new[] { 0, 2, 3 }, result.Frames.Select(f => f.Step).ToArray());
        Assert.All(result.Frames, f => Assert.Equal(3, f.Sample.shape[0]));
        Assert.Equal(0, result.Frames[^1].LevelAfter);
        // The last frame's x_t is the first samples themselves.
        Assert.Equal(0.0, Numerics.MaxAbs(result.Frames[^1].Sample - result.Samples.narrow(0, 0, 3)));
    }

    [Fact]
    public void CancellationStopsBeforeTheNextStep()
    {
        using var scope = NewDisposeScope();
        using var model = DiffusionModel.Load(ShippedModels.FashionMnist);
        using var cancel = new CancellationTokenSource();
        int steps = 0;
        Assert.Throws<OperationCanceledException>(() => SamplingPipeline.Run(model, new SamplingRequest(new SamplerChoice(SamplerKind.Ddim, Steps: 10), Count: 2),
            onStep: s => { steps++; if (s.View.Step == 1) cancel.Cancel(); }, cancellationToken: cancel.Token));
        Assert.Equal(2, steps);
    }

    [Fact]
    public void BadRequestsNameTheirField()
    {
        using var model = DiffusionModel.Load(ShippedModels.FashionMnist);
        var cases = new (SamplingRequest Request, string Field, string Text)[]
        {
            (new SamplingRequest(new SamplerChoice(SamplerKind.Ddim, Steps: 1001)), "steps", "--steps must be from 1 to 1000"),
            (new SamplingRequest(new SamplerChoice(SamplerKind.Ddpm, Eta: 0.5)), "eta", "--eta applies to --sampler ddim only"),
            (new SamplingRequest(new SamplerChoice(), Count: 0), "n", "--n must be"),
            (new SamplingRequest(new SamplerChoice(), Conditioning: new ConditioningRequest(Class: 3)), "class", "unconditional"),
            (new SamplingRequest(new SamplerChoice(), Conditioning: new ConditioningRequest(GuidanceScale: 2)), "guidance-scale", "class-conditional"),
        };
        foreach (var (request, field, text) in cases)
        {
            var e = Assert.Throws<InvalidRequestException>(() => SamplingPipeline.Run(model, request));
            Assert.Equal(field, e.Field);
            Assert.Contains(text, e.Message);
        }
    }
}
