using Ddpm.IO;
using Ddpm.Tests.Cli;
using Ddpm.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.IO;

/// <summary>
/// State dicts written by PyTorch's own torch.save (PyTorch 1.13, Fixtures/pytorch; the commands are in
/// Fixtures/diffusers/README.md), read back through TorchSharp.PyBridge.
/// </summary>
public class PyTorchStateDictTests
{
    private static string Fixture(string name) => Path.Combine(ShippedModels.RepositoryRoot, "tests", "Ddpm.Tests", "Fixtures", "pytorch", name);

    [Fact]
    public void ReadsDtypesShapesAndStridesAsTorchSaveWroteThem()
    {
        using var scope = NewDisposeScope();
        var state = PyTorchStateDict.Load(Fixture("state-dict.pt"));
        Assert.Equal(new[] { "b", "h", "w" }, state.Keys.Order());
        // w = arange(6).reshape(2, 3).t(): a transposed (non-contiguous) float64 tensor.
        Assert.Equal(ScalarType.Float64, state["w"].dtype);
        Assert.Equal(new long[] { 3, 2 }, state["w"].shape);
        Assert.Equal(new double[] { 0, 3, 1, 4, 2, 5 }, state["w"].contiguous().data<double>().ToArray());
        Assert.Equal(ScalarType.Int64, state["b"].dtype);
        Assert.Equal(new long[] { 1, -2 }, state["b"].data<long>().ToArray());
        Assert.Equal(ScalarType.Float16, state["h"].dtype);
        Assert.Equal(new float[] { 0.5f, -1.25f }, state["h"].to_type(ScalarType.Float32).data<float>().ToArray());
    }

    [Fact]
    public void FilesThatAreNotAStateDictOfTensorsAreOneLineErrors()
    {
        using var temp = new TempDirectory();
        void Expect(string path, params string[] fragments)
        {
            var e = Assert.Throws<CorruptFileException>(() => PyTorchStateDict.Load(path));
            Assert.DoesNotContain('\n', e.Message);
            foreach (var f in fragments) Assert.Contains(f, e.Message);
        }

        // A training checkpoint: a dict of a state dict and a step count.
        Expect(Fixture("training-checkpoint.pt"), "is not a tensor", "torch.save(model.state_dict(), FILE)");

        string truncated = temp.Combine("truncated.bin");
        byte[] bytes = File.ReadAllBytes(Fixture("state-dict.pt"));
        File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
        Expect(truncated, "not a PyTorch state dict");

        string text = temp.Combine("text.bin");
        File.WriteAllText(text, "not a pickle at all");
        Expect(text, "not a PyTorch state dict");

        Assert.True(PyTorchStateDict.IsPickleFile("a/diffusion_pytorch_model.BIN"));
        Assert.False(PyTorchStateDict.IsPickleFile("a/diffusion_pytorch_model.safetensors"));
    }
}
