using Ddpm.Runtime;

namespace Ddpm.Tests.Support;

/// <summary>
/// A fact that needs native bfloat16 (AVX-512 BF16 or AMX): skipped, and reported as skipped, on CPUs without it, where
/// libtorch's emulated bfloat16 is slow and not a path Ddpm takes (auto precision picks float32 there).
/// </summary>
public sealed class Bf16FactAttribute : FactAttribute
{
    public Bf16FactAttribute()
    {
        if (!CpuFeatures.HasBFloat16) Skip = "this CPU has no native bfloat16 (avx512_bf16 / amx_bf16)";
    }
}

/// <summary>The theory form of <see cref="Bf16FactAttribute"/>.</summary>
public sealed class Bf16TheoryAttribute : TheoryAttribute
{
    public Bf16TheoryAttribute()
    {
        if (!CpuFeatures.HasBFloat16) Skip = "this CPU has no native bfloat16 (avx512_bf16 / amx_bf16)";
    }
}
