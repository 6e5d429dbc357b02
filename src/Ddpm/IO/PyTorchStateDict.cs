using System.Collections;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ddpm.IO;

/// <summary>
/// A state dict written by PyTorch's <c>torch.save(model.state_dict(), FILE)</c> in the zip format (PyTorch 1.6 and
/// later; diffusers' <c>diffusion_pytorch_model.bin</c>). TorchSharp.PyBridge's unpickler rebuilds only tensors and
/// ordered dicts from the pickle, never arbitrary Python objects, so reading an untrusted file cannot run its code.
/// </summary>
public static class PyTorchStateDict
{
    /// <summary>File extensions of PyTorch pickles; every other weights file is read as safetensors.</summary>
    public static readonly IReadOnlyList<string> Extensions = [".bin", ".pt", ".pth", ".ckpt"];

    /// <summary>Whether <paramref name="path"/> names a PyTorch pickle by its extension.</summary>
    public static bool IsPickleFile(string path) =>
        Extensions.Contains(Path.GetExtension(path), StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// The named tensors of the state dict in <paramref name="path"/> (on the CPU, owned by the caller). A file that
    /// is not a zip-format state dict of tensors is a <see cref="CorruptFileException"/> that says so.
    /// </summary>
    public static Dictionary<string, Tensor> Load(string path)
    {
        var state = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        string? notTensor = null;
        try
        {
            using var stream = File.OpenRead(path);
            // PyBridge's own tensor reader copies the file's bytes into a tensor of the saved shape and strides, which
            // fails for non-contiguous tensors (a transposed weight) and misreads views into a larger storage. So it
            // only parses the pickle here, and each tensor is rebuilt as PyTorch does: the whole storage, then the
            // view (offset, shape, strides), then a contiguous copy. Storages shared by several tensors are read once.
            var table = PyTorchUnpickler.UnpickleStateDict(stream, leaveOpen: true, skipTensorRead: true);
            var storages = new Dictionary<int, byte[]>();
            foreach (DictionaryEntry entry in table)
            {
                if (entry.Key is string name && StoredTensor.From(entry.Value) is { } stored) state[name] = stored.Read(storages);
                else notTensor ??= entry.Key?.ToString() ?? "(null)";
            }
        }
        catch (Exception e) when (e is not (OutOfMemoryException or FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException))
        {
            foreach (var tensor in state.Values) tensor.Dispose();
            throw new CorruptFileException(path, $"it is not a PyTorch state dict in the zip format of torch.save ({OneLine(e.Message)})",
                "Re-save it in Python with torch.save(model.state_dict(), FILE), or as safetensors.", e);
        }
        if (notTensor is not null || state.Count == 0)
        {
            foreach (var tensor in state.Values) tensor.Dispose();
            throw new CorruptFileException(path, notTensor is null
                    ? "it holds no tensors"
                    : $"its entry '{notTensor}' is not a tensor: the file holds more than a model's state dict (a training checkpoint?)",
                "Save only the weights: torch.save(model.state_dict(), FILE).");
        }
        return state;
    }

    /// <summary>
    /// What PyBridge's unpickler returns for a tensor when asked not to read it: the storage's stream in the archive
    /// and the view's dtype, offset, shape and strides (its type is internal to PyBridge, so read by reflection).
    /// </summary>
    private sealed record StoredTensor(int StorageIndex, Stream Data, ScalarType DType, long Offset, long[] Shape, long[] Stride)
    {
        public static StoredTensor? From(object? value)
        {
            if (value is null || value.GetType().Name != "TensorConstructorArgs") return null;
            object? Get(string property) => value.GetType().GetProperty(property)?.GetValue(value)
                ?? throw new InvalidDataException($"TorchSharp.PyBridge's tensor description has no {property}");
            return new StoredTensor((int)Get("ArchiveIndex")!, (Stream)Get("Data")!, (ScalarType)Get("DType")!,
                Convert.ToInt64(Get("StorageOffset")), (long[])Get("Shape")!, (long[])Get("Stride")!);
        }

        public Tensor Read(Dictionary<int, byte[]> storages)
        {
            using (Data)
            {
                if (!storages.TryGetValue(StorageIndex, out var bytes))
                {
                    using var buffer = new MemoryStream();
                    Data.CopyTo(buffer);
                    storages[StorageIndex] = bytes = buffer.ToArray();
                }
                using var scope = NewDisposeScope();
                var storage = empty(0, DType);
                long elementSize = storage.ElementSize;
                if (bytes.Length % elementSize != 0)
                    throw new InvalidDataException($"a storage of {bytes.Length} bytes does not hold whole {DType} elements");
                storage = empty(bytes.Length / elementSize, DType);
                storage.bytes = bytes;
                long last = Offset + Shape.Zip(Stride, (size, stride) => (size - 1) * stride).Sum();
                if (Shape.Any(size => size == 0)) last = Offset - 1;
                if (Offset < 0 || last >= storage.shape[0])
                    throw new InvalidDataException($"a tensor of shape [{string.Join(", ", Shape)}] reaches past its storage of {storage.shape[0]} elements");
                return storage.as_strided(Shape, Stride, Offset).contiguous().clone().MoveToOuterDisposeScope();
            }
        }
    }

    private static string OneLine(string message) =>
        string.Join(' ', message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries)).TrimEnd('.');
}
