using Ddpm.IO;
using Ddpm.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Cli;

/// <summary>The commands on diffusers checkpoints: info, run, sample from a given x_T, export and read back.</summary>
public class DiffusersCommandTests
{
    private static string Fixture(string name) => Path.Combine(ShippedModels.RepositoryRoot, "tests", "Ddpm.Tests", "Fixtures", "diffusers", name);
    private static string ReferenceFile => Path.Combine(Fixture("cifar10-layout"), "reference.safetensors");

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToArray();

    [Fact]
    public void ModelInfoDescribesADiffusersCheckpoint()
    {
        var run = CliRunner.Run("model", "info", "--checkpoint", Fixture("cifar10-layout-legacy-fp16"));
        CliAssert.Success(run);
        var lines = Lines(run.Stdout);
        Assert.Contains("parameters: 2245763", lines);   // the fixture's README: 2,245,763 parameters
        Assert.Contains("norm_eps: 1E-06", lines);
        Assert.Contains("downsample_padding: right-bottom", lines);
        Assert.Contains("levels: 32x32x32, 16x16x64, 8x8x64, 4x4x64", lines);
        CliAssert.UsageError(CliRunner.Run("model", "info", "--checkpoint", Fixture("cifar10-layout"), "--channels", "64"), "shape options");
    }

    [Fact]
    public void ModelRunAndSampleReproduceDiffusersThroughTheCommandLine()
    {
        using var temp = new TempDirectory();
        using var scope = NewDisposeScope();
        var reference = SafeTensors.Load(ReferenceFile);
        string inputs = temp.Combine("inputs.safetensors"), outputs = temp.Combine("out.safetensors");
        SafeTensors.Save(inputs, new Dictionary<string, Tensor> { ["x"] = reference["x"], ["t"] = reference["t"] });
        CliAssert.Success(CliRunner.Run("model", "run", "--checkpoint", Fixture("cifar10-layout"), "--inputs", inputs, "--out", outputs));
        var output = SafeTensors.Load(outputs)["out"];
        Assert.True(Numerics.MaxAbs(output - reference["out"]) / Numerics.MaxAbs(reference["out"]) <= 1e-4);

        string samples = temp.Combine("samples.safetensors");
        var run = CliRunner.Run("sample", "--checkpoint", Fixture("cifar10-layout"), "--sampler", "ddim", "--steps", "10", "--clip-sample", "false",
            "--precision", "fp32", "--n", "2", "--initial-noise", ReferenceFile + ":ddim_xT", "--save-tensors", samples, "--out", temp.Combine("images"));
        CliAssert.Success(run);
        var x0 = SafeTensors.Load(samples)["samples"];
        double error = Numerics.MaxAbs(x0 - reference["ddim_x0"]) / Numerics.MaxAbs(reference["ddim_x0"]);
        Assert.True(error <= 1e-3, $"DDIM through the CLI: {error:E2}");
        Assert.True(File.Exists(temp.Combine("images", "grid.png")));
    }

    [Fact]
    public void AnExportedShippedModelSamplesAndRunsExactlyAsTheOriginal()
    {
        using var temp = new TempDirectory();
        string exported = temp.Combine("diffusers");
        CliAssert.Success(CliRunner.Run("export", "--checkpoint", ShippedModels.FashionMnist, "--format", "diffusers", "--out", exported));
        Assert.True(File.Exists(Path.Combine(exported, "unet", "diffusion_pytorch_model.safetensors")));
        string[] sample = { "sample", "--sampler", "ddim", "--steps", "4", "--n", "2", "--seed", "3", "--precision", "fp32" };
        CliAssert.Success(CliRunner.Run(sample.Concat(new[] { "--checkpoint", ShippedModels.FashionMnist, "--out", temp.Combine("a") }).ToArray()));
        CliAssert.Success(CliRunner.Run(sample.Concat(new[] { "--checkpoint", exported, "--out", temp.Combine("b") }).ToArray()));
        Assert.Equal(File.ReadAllBytes(temp.Combine("a", "grid.png")), File.ReadAllBytes(temp.Combine("b", "grid.png")));
    }

    [Fact]
    public void BadTensorInputsAreOneLineErrors()
    {
        using var temp = new TempDirectory();
        string checkpoint = Fixture("cifar10-layout");
        CliAssert.UsageError(CliRunner.Run("sample", "--checkpoint", checkpoint, "--n", "2", "--steps", "2", "--sampler", "ddim", "--initial-noise", ReferenceFile, "--out", temp.Combine("o")),
            "holds 6 tensors", "FILE:NAME");
        CliAssert.UsageError(CliRunner.Run("sample", "--checkpoint", checkpoint, "--n", "3", "--steps", "2", "--sampler", "ddim", "--initial-noise", ReferenceFile + ":ddim_xT", "--out", temp.Combine("o")),
            "shape [2, 3, 32, 32]", "[3, 3, 32, 32]");
        CliAssert.UsageError(CliRunner.Run("sample", "--checkpoint", checkpoint, "--n", "2", "--initial-noise", ReferenceFile + ":latents", "--out", temp.Combine("o")),
            "no tensor 'latents'", "ddim_xT");
        CliAssert.UsageError(CliRunner.Run("sample", "--checkpoint", checkpoint, "--clip-sample", "maybe", "--out", temp.Combine("o")), "--clip-sample must be true or false");
        using (var scope = NewDisposeScope())
            SafeTensors.Save(temp.Combine("x-only.safetensors"), new Dictionary<string, Tensor> { ["x"] = zeros(1, 3, 32, 32) });
        CliAssert.UsageError(CliRunner.Run("model", "run", "--checkpoint", checkpoint, "--inputs", temp.Combine("x-only.safetensors"), "--out", temp.Combine("o.safetensors")),
            "'x' [B, C, H, W] and 't' [B]");
        CliAssert.UsageError(CliRunner.Run("model", "run", "--checkpoint", checkpoint, "--inputs", temp.Combine("missing.safetensors"), "--out", temp.Combine("o.safetensors")),
            "does not exist");
        Assert.False(Directory.Exists(temp.Combine("o")));
        Assert.False(File.Exists(temp.Combine("o.safetensors")));
    }
}
