using System.Text.Json.Nodes;
using Ddpm.Diffusion;
using Ddpm.Interop;
using Ddpm.IO;
using Ddpm.Models;
using Ddpm.Sampling;
using Ddpm.Schedules;
using Ddpm.Tests.Cli;
using Ddpm.Tests.Support;
using Ddpm.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Interop;

/// <summary>
/// Checkpoints written by diffusers 0.30.0's own code (Fixtures/diffusers, random weights, outputs computed by
/// diffusers): our U-Net and DDIM reproduce them, and what we write reads back bit for bit with diffusers' keys.
/// </summary>
public class DiffusersCheckpointTests
{
    private static string Fixture(string name) => Path.Combine(ShippedModels.RepositoryRoot, "tests", "Ddpm.Tests", "Fixtures", "diffusers", name);

    private static Dictionary<string, Tensor> Reference(string name) => SafeTensors.Load(Path.Combine(Fixture(name), "reference.safetensors"));

    [Theory]
    [InlineData("cifar10-layout", "cifar10-layout")]
    [InlineData("cifar10-layout-legacy-fp16", "cifar10-layout-legacy-fp16")]
    // The legacy weights saved by torch.save as the only weights file, as google/ddpm-ema-church-256 ships them.
    [InlineData("cifar10-layout-legacy-fp16-bin", "cifar10-layout-legacy-fp16")]
    public void OurForwardMatchesUNet2DModel(string name, string referenceName)
    {
        using var scope = NewDisposeScope();
        var reference = Reference(referenceName);
        var (network, config) = Checkpoint.LoadNetwork(Fixture(name));
        using (network)
        using (no_grad())
        {
            var output = ((UNet)network).forward(reference["x"], reference["t"]);
            double error = Numerics.MaxAbs(output - reference["out"]) / Numerics.MaxAbs(reference["out"]);
            Assert.True(error <= 1e-4, $"max |ours − diffusers| / max |diffusers| = {error:E2}");
        }
        Assert.Equal(PredictionType.Epsilon, config.Diffusion.Prediction);
        Assert.Equal(VarianceType.FixedLarge, config.Diffusion.Variance);
        Assert.Equal(new ScheduleConfig(ScheduleKind.Linear, 1000, 1e-4, 0.02), config.Diffusion.Schedule);
        Assert.Equal(new SamplingDefaults(TimestepSpacing.Leading, true), config.Sampling);
    }

    [Fact]
    public void OurDdimFollowsDiffusersTrajectoryFromTheSameNoise()
    {
        using var scope = NewDisposeScope();
        var reference = Reference("cifar10-layout");
        var (network, config) = Checkpoint.LoadNetwork(Fixture("cifar10-layout"));
        using (network)
        using (no_grad())
        {
            using var scheduler = new DdimScheduler(config.Diffusion, eta: 0.0, clipping: X0Clipping.None);
            var timesteps = reference["ddim_timesteps"].data<long>().Select(t => (int)t).ToArray();
            scheduler.SetTimesteps(timesteps);
            Assert.Equal(timesteps, scheduler.Timesteps.ToArray());
            var x0 = DiffusionSampler.Sample(scheduler, ((UNet)network).AsDenoiser(), reference["ddim_xT"]);
            double error = Numerics.MaxAbs(x0 - reference["ddim_x0"]) / Numerics.MaxAbs(reference["ddim_x0"]);
            Assert.True(error <= 1e-3, $"max |ours − diffusers| / max |diffusers| = {error:E2}");
        }
    }

    [Fact]
    public void TheDdpmCifar10PresetIsTheGoogleCheckpointsConfiguration()
    {
        // The fixture is google/ddpm-cifar10-32's layout with narrower channels and no dropout field's effect.
        var read = Checkpoint.ReadConfig(Fixture("cifar10-layout")).Model.UNet!;
        var preset = UNetPresets.Cifar10 with { BaseChannels = 32, Dropout = 0.0 };
        Assert.Equal(Json.Serialize(preset), Json.Serialize(read));
        Assert.Equal(1e-6, read.NormEpsilon);
        Assert.Equal(DownsamplePadding.RightBottom, read.DownsamplePadding);
    }

    [Fact]
    public void AnExportReadsBackBitForBitWithDiffusersKeysAndValues()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempDirectory();
        var (network, config) = Checkpoint.LoadNetwork(Fixture("cifar10-layout"));
        string output = temp.Combine("pipeline");
        using (network)
            DiffusersCheckpoint.Save(output, (UNet)network, config);

        // The written configs hold the keys diffusers writes, with the fixture's values (the same model).
        var writtenUNet = ReadJson(Path.Combine(output, "unet", "config.json"));
        var fixtureUNet = ReadJson(Fixture("cifar10-layout/config.json"));
        Assert.Equal(fixtureUNet.Select(p => p.Key).Order(), writtenUNet.Select(p => p.Key).Order());
        foreach (var (key, value) in fixtureUNet)
            Assert.True(SameJson(value, writtenUNet[key]), $"unet/config.json {key}: {writtenUNet[key]?.ToJsonString()} vs diffusers' {value?.ToJsonString()}");
        var writtenScheduler = ReadJson(Path.Combine(output, "scheduler", "scheduler_config.json"));
        var fixtureScheduler = ReadJson(Fixture("cifar10-layout/scheduler_config.json"));
        Assert.Equal(fixtureScheduler.Select(p => p.Key).Order(), writtenScheduler.Select(p => p.Key).Order());
        foreach (var (key, value) in fixtureScheduler)
            Assert.True(SameJson(value, writtenScheduler[key]), $"scheduler_config.json {key}: {writtenScheduler[key]?.ToJsonString()} vs diffusers' {value?.ToJsonString()}");
        var (tensors, metadata) = SafeTensors.LoadWithMetadata(Path.Combine(output, "unet", "diffusion_pytorch_model.safetensors"));
        Assert.Equal("pt", metadata["format"]);
        var fixtureTensors = SafeTensors.Load(Fixture("cifar10-layout/diffusion_pytorch_model.safetensors"));
        Assert.Equal(fixtureTensors.Keys.Order(), tensors.Keys.Order());
        foreach (var (key, value) in fixtureTensors)
            Assert.True(value.equal(tensors[key]).all().item<bool>(), $"{key} differs from the fixture's");
        foreach (var t in tensors.Values.Concat(fixtureTensors.Values)) t.Dispose();

        var reference = Reference("cifar10-layout");
        var (original, _) = Checkpoint.LoadNetwork(Fixture("cifar10-layout"));
        var (reread, _) = Checkpoint.LoadNetwork(output);
        using (original)
        using (reread)
        using (no_grad())
            Assert.True(((UNet)original).forward(reference["x"], reference["t"]).equal(((UNet)reread).forward(reference["x"], reference["t"])).all().item<bool>());
    }

    [Fact]
    public void OurClassConditionalModelsRoundTripWithTheirNoClassRow()
    {
        using var scope = NewDisposeScope();
        using var temp = new TempDirectory();
        torch.random.manual_seed(3);
        var config = UNetPresets.Tiny with { NumClasses = 4, AttentionHeadChannels = 8, FlipSinToCos = true, FrequencyShift = 0 };
        using var network = new UNet(config);
        // Non-zero weights everywhere, so that every mapped tensor matters.
        using (no_grad())
            foreach (var p in network.parameters()) p.copy_(randn_like(p) * 0.1);
        network.eval();
        var checkpoint = new CheckpointConfig(new ModelConfig(config), new DiffusionConfig(new ScheduleConfig(ScheduleKind.Cosine), PredictionType.V));
        DiffusersCheckpoint.Save(temp.Combine("tiny"), network, checkpoint);
        var (reread, readConfig) = Checkpoint.LoadNetwork(temp.Combine("tiny"));
        using (reread)
        using (no_grad())
        {
            Assert.Equal(Json.Serialize(checkpoint.Model), Json.Serialize(readConfig.Model));
            Assert.Equal(checkpoint.Diffusion, readConfig.Diffusion);
            var x = randn(5, 1, 8, 8);
            var t = tensor(new long[] { 0, 10, 500, 900, 999 });
            var labels = tensor(new long[] { 0, 1, 2, 3, 4 }); // 4 = no class
            Assert.True(network.Forward(x, t, labels).equal(((UNet)reread).Forward(x, t, labels)).all().item<bool>());
        }
        var written = ReadJson(temp.Combine("tiny", "unet", "config.json"));
        Assert.Equal(5, written["num_class_embeds"]!.GetValue<int>());
        Assert.Equal(8, written["attention_head_dim"]!.GetValue<int>());
        Assert.Equal("squaredcos_cap_v2", ReadJson(temp.Combine("tiny", "scheduler", "scheduler_config.json"))["beta_schedule"]!.GetValue<string>());
    }

    [Fact]
    public void MultiHeadAttentionIsAttentionPerGroupOfChannels()
    {
        using var scope = NewDisposeScope();
        torch.random.manual_seed(5);
        const int channels = 16, heads = 4, size = 3, d = channels / heads;
        using var block = new AttentionBlock(channels, size, groups: 4, heads: heads);
        using (no_grad())
            foreach (var p in block.parameters()) p.copy_(randn_like(p) * 0.3);
        var x = randn(2, channels, size, size);
        Tensor actual;
        using (no_grad()) actual = block.forward(x, empty(0));
        // float64 by hand: q, k, v from the 1×1 convolution, softmax(q kᵀ/√d) v per head of d channels.
        var state = block.state_dict().ToDictionary(p => p.Key, p => p.Value.to_type(ScalarType.Float64));
        var h = nn.functional.group_norm(x.to_type(ScalarType.Float64), 4, state["norm.weight"], state["norm.bias"], 1e-5).reshape(2, channels, size * size);
        var qkv = matmul(state["qkv.weight"].flatten(1), h) + state["qkv.bias"].unsqueeze(-1); // [B, 3C, HW]
        var heads_ = new List<Tensor>();
        for (int head = 0; head < heads; head++)
        {
            var q = qkv.narrow(1, head * d, d).transpose(1, 2);
            var k = qkv.narrow(1, channels + head * d, d).transpose(1, 2);
            var v = qkv.narrow(1, 2 * channels + head * d, d).transpose(1, 2);
            heads_.Add(matmul(softmax(matmul(q, k.transpose(1, 2)) / Math.Sqrt(d), -1), v).transpose(1, 2));
        }
        var attended = cat(heads_.ToArray(), 1);
        var expected = x.to_type(ScalarType.Float64) + (matmul(state["proj_out.weight"].flatten(1), attended) + state["proj_out.bias"].unsqueeze(-1)).reshape(2, channels, size, size);
        Assert.True(Numerics.RelativeError(actual, expected) < 1e-5, $"relative error {Numerics.RelativeError(actual, expected):E2}");
    }

    [Fact]
    public void ConfigsWrittenBeforeTheNewFieldsReadWithThePapersBehaviour()
    {
        var old = System.Text.Json.JsonSerializer.Deserialize<UNetConfig>("""{"image_size": 28, "in_channels": 1, "base_channels": 32, "channel_multipliers": [1, 2, 2], "res_blocks_per_level": 2, "attention_resolutions": [7]}""", Json.Options)!;
        Assert.Equal(1e-5, old.NormEpsilon);
        Assert.Equal(DownsamplePadding.Symmetric, old.DownsamplePadding);
        Assert.False(old.FlipSinToCos);
        Assert.Equal(1.0, old.FrequencyShift);
        Assert.Equal(0, old.AttentionHeadChannels);
    }

    [Fact]
    public void TheTimestepEmbeddingFollowsDiffusersFlipAndShift()
    {
        // get_timestep_embedding(t, 6, flip_sin_to_cos=True, downscale_freq_shift=0): frequencies 10000^(−i/3), cos first.
        using var scope = NewDisposeScope();
        var embedding = TimestepEmbedding.Sinusoidal(tensor(new long[] { 7 }), 6, ScalarType.Float64, flipSinToCos: true, frequencyShift: 0);
        var frequencies = Enumerable.Range(0, 3).Select(i => Math.Pow(10000, -i / 3.0)).ToArray();
        var expected = frequencies.Select(f => Math.Cos(7 * f)).Concat(frequencies.Select(f => Math.Sin(7 * f))).ToArray();
        Assert.Equal(expected, embedding.data<double>().ToArray(), (a, b) => Math.Abs(a - b) < 1e-12);
    }

    [Fact]
    public void BadCheckpointsAreOneLineErrorsThatNameTheProblem()
    {
        using var temp = new TempDirectory();
        string Copy(string name)
        {
            string dir = temp.Combine(name + "-" + Guid.NewGuid().ToString("N")[..6]);
            Directory.CreateDirectory(dir);
            foreach (var file in Directory.GetFiles(Fixture("cifar10-layout")))
                File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
            return dir;
        }
        void Expect(string dir, params string[] fragments)
        {
            var e = Assert.Throws<CheckpointException>(() => { var (n, _) = Checkpoint.LoadNetwork(dir); n.Dispose(); });
            Assert.DoesNotContain('\n', e.Message);
            foreach (var f in fragments) Assert.Contains(f, e.Message);
        }
        void EditConfig(string dir, string file, Action<JsonObject> edit)
        {
            var json = ReadJson(Path.Combine(dir, file));
            edit(json);
            File.WriteAllText(Path.Combine(dir, file), json.ToJsonString());
        }
        void EditWeights(string dir, Action<Dictionary<string, Tensor>> edit)
        {
            string path = Path.Combine(dir, "diffusion_pytorch_model.safetensors");
            var tensors = SafeTensors.Load(path);
            edit(tensors);
            SafeTensors.Save(path, tensors);
            foreach (var t in tensors.Values) t.Dispose();
        }

        string unknownBlock = Copy("block");
        EditConfig(unknownBlock, "config.json", j => j["down_block_types"]![1] = "CrossAttnDownBlock2D");
        Expect(unknownBlock, "down_block_types", "CrossAttnDownBlock2D", "not supported");

        string missing = Copy("missing");
        EditWeights(missing, t => { t["mid_block.attentions.0.to_q.weight"].Dispose(); t.Remove("mid_block.attentions.0.to_q.weight"); });
        Expect(missing, "has no tensor 'mid_block.attentions.0.to_q.weight'");

        string shape = Copy("shape");
        EditWeights(shape, t => t["conv_in.weight"] = zeros(32, 3, 5, 5));
        Expect(shape, "'conv_in.weight' has shape [32, 3, 5, 5]", "[32, 3, 3, 3]");

        string truncated = Copy("truncated");
        string weights = Path.Combine(truncated, "diffusion_pytorch_model.safetensors");
        File.WriteAllBytes(weights, File.ReadAllBytes(weights)[..100_000]);
        Expect(truncated, "is damaged");

        string pickle = Copy("pickle");
        File.Delete(Path.Combine(pickle, "diffusion_pytorch_model.safetensors"));
        File.WriteAllBytes(Path.Combine(pickle, "diffusion_pytorch_model.bin"), File.ReadAllBytes(Fixture("cifar10-layout-legacy-fp16-bin/diffusion_pytorch_model.bin"))[..50_000]);
        Expect(pickle, "diffusion_pytorch_model.bin", "is damaged", "not a PyTorch state dict");

        string schedule = Copy("schedule");
        EditConfig(schedule, "scheduler_config.json", j => j["beta_schedule"] = "scaled_linear");
        Expect(schedule, "beta_schedule", "scaled_linear");

        string neither = temp.Combine("neither");
        Directory.CreateDirectory(neither);
        File.WriteAllText(Path.Combine(neither, "notes.txt"), "not a model");
        Expect(neither, "neither a checkpoint of ours nor a diffusers model directory");
    }

    /// <summary>The same JSON value, numbers compared as numbers (1e-06 and 1E-06, 0.0 and 0).</summary>
    private static bool SameJson(JsonNode? a, JsonNode? b) => (a, b) switch
    {
        (null, null) => true,
        (JsonArray x, JsonArray y) => x.Count == y.Count && x.Zip(y).All(p => SameJson(p.First, p.Second)),
        (JsonValue x, JsonValue y) when x.GetValueKind() == System.Text.Json.JsonValueKind.Number && y.GetValueKind() == System.Text.Json.JsonValueKind.Number
            => x.GetValue<double>() == y.GetValue<double>(),
        (JsonValue x, JsonValue y) => x.ToJsonString() == y.ToJsonString(),
        _ => false,
    };

    private static JsonObject ReadJson(string path) => (JsonObject)JsonNode.Parse(File.ReadAllText(path))!;
}
