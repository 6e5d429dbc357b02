using TorchSharp;
using static TorchSharp.torch;

namespace Ddpm.Tests.Support;

/// <summary>Small float64 references for tests.</summary>
public static class Numerics
{
    public static double RelativeError(Tensor actual, Tensor expected)
    {
        using var scope = NewDisposeScope();
        var a = actual.to_type(ScalarType.Float64);
        var e = expected.to_type(ScalarType.Float64);
        return (a - e).norm().item<double>() / Math.Max(e.norm().item<double>(), 1e-300);
    }

    public static double MaxAbs(Tensor t)
    {
        using var scope = NewDisposeScope();
        return t.abs().max().to_type(ScalarType.Float64).item<double>();
    }

    /// <summary>Standard normal CDF through erfc, independent of libtorch (W. J. Cody's rational approximations via Math functions are not in .NET; use a high-precision series/continued fraction).</summary>
    public static double NormalCdf(double z) => 0.5 * Erfc(-z / Math.Sqrt(2.0));

    /// <summary>erfc(x) to ~1e-15 relative: Taylor series for |x| &lt; 3, continued fraction beyond.</summary>
    public static double Erfc(double x)
    {
        if (x < 0) return 2.0 - Erfc(-x);
        if (x < 3.0)
        {
            // erf(x) = 2/√π Σ (−1)^n x^{2n+1} / (n! (2n+1))
            double sum = 0, term = x;
            for (int n = 0; n < 200; n++)
            {
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.Abs(add) < 1e-17 * Math.Abs(sum)) break;
                term *= -x * x / (n + 1);
            }
            return 1.0 - 2.0 / Math.Sqrt(Math.PI) * sum;
        }
        // Lentz's continued fraction: erfc(x) = exp(−x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...))))
        double f = x, c = x, d = 0, tiny = 1e-300;
        for (int k = 1; k < 500; k++)
        {
            double a = k / 2.0;
            d = x + a * d; if (Math.Abs(d) < tiny) d = tiny; d = 1 / d;
            c = x + a / c; if (Math.Abs(c) < tiny) c = tiny;
            double delta = c * d;
            f *= delta;
            if (Math.Abs(delta - 1) < 1e-16) break;
        }
        return Math.Exp(-x * x) / Math.Sqrt(Math.PI) / f;
    }

    /// <summary>Composite Simpson integral of f over [a, b] with n (even) intervals.</summary>
    public static double Simpson(Func<double, double> f, double a, double b, int n = 20000)
    {
        if (n % 2 == 1) n++;
        double h = (b - a) / n, sum = f(a) + f(b);
        for (int i = 1; i < n; i++) sum += f(a + i * h) * (i % 2 == 1 ? 4 : 2);
        return sum * h / 3;
    }

    public static double[] ToArray(Tensor t)
    {
        using var scope = NewDisposeScope();
        return t.to_type(ScalarType.Float64).contiguous().cpu().data<double>().ToArray();
    }

    /// <summary>Column means and the (unbiased) covariance of samples [N, d].</summary>
    public static (double[] Mean, double[,] Covariance) Moments(Tensor samples)
    {
        var x = ToArray(samples);
        int d = (int)samples.shape[1], n = (int)samples.shape[0];
        var mean = new double[d];
        for (int i = 0; i < n; i++) for (int j = 0; j < d; j++) mean[j] += x[i * d + j] / n;
        var cov = new double[d, d];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < d; j++)
                for (int k = 0; k < d; k++)
                    cov[j, k] += (x[i * d + j] - mean[j]) * (x[i * d + k] - mean[k]) / (n - 1);
        return (mean, cov);
    }
}

/// <summary>Classification accuracy counted here, independently of the library's ClassifierTraining.Accuracy.</summary>
public static class IndependentAccuracy
{
    /// <summary>Top-1 accuracy: logits in batches of 1,000, the argmax of each row found by a plain loop over float64 values.</summary>
    public static double Of(Func<Tensor, Tensor> logits, Ddpm.Data.ImageDataset data)
    {
        var labels = data.Labels!.to_type(ScalarType.Int64).data<long>().ToArray();
        long correct = 0;
        using var noGrad = no_grad();
        for (long start = 0; start < data.Count; start += 1000)
        {
            using var scope = NewDisposeScope();
            long size = Math.Min(1000, data.Count - start);
            var output = logits(data.Images.narrow(0, start, size));
            int classes = (int)output.shape[1];
            var values = output.to_type(ScalarType.Float64).contiguous().data<double>().ToArray();
            for (int i = 0; i < size; i++)
            {
                int best = 0;
                for (int k = 1; k < classes; k++) if (values[i * classes + k] > values[i * classes + best]) best = k;
                if (best == labels[start + i]) correct++;
            }
        }
        return (double)correct / data.Count;
    }
}
