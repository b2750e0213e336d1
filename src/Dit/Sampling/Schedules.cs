namespace BlockDance.Dit.Sampling;

/// <summary>
/// The diffusion of the original DiT code, respaced to fewer steps (model-spec §1.13):
/// https://github.com/facebookresearch/DiT/blob/ed81ce2229091fd4ecc9a223645f95cf379d582b/diffusion/gaussian_diffusion.py
/// https://github.com/facebookresearch/DiT/blob/ed81ce2229091fd4ecc9a223645f95cf379d582b/diffusion/respace.py
/// All tables are float64 like the numpy original and rounded to float32 where the reference gathers them
/// (<c>_extract_into_tensor</c>); the per-step formulas then run in float32 as they do in PyTorch.
/// Index <c>i</c> here is the respaced index (0 = least noisy); sampling visits i = S−1 … 0.
/// </summary>
internal sealed class RespacedDiffusion
{
    public const int TrainingSteps = 1000;

    public RespacedDiffusion(int steps)
    {
        if (steps < 1 || steps > TrainingSteps)
            throw new ArgumentOutOfRangeException(nameof(steps), $"steps must be in [1, {TrainingSteps}], not {steps}");
        Steps = steps;
        TimestepMap = SpaceTimesteps(TrainingSteps, steps);
        double[] baseAlphasCumprod = CumulativeProduct(LinearBetas(TrainingSteps).Select(b => 1.0 - b).ToArray());
        // SpacedDiffusion: new_beta = 1 − ᾱ[t_k]/ᾱ[t_{k−1}], so the respaced ᾱ equals the original at the kept steps.
        Betas = new double[steps];
        double last = 1.0;
        for (int k = 0; k < steps; k++)
        {
            double acp = baseAlphasCumprod[TimestepMap[k]];
            Betas[k] = 1.0 - acp / last;
            last = acp;
        }
        var alphas = Betas.Select(b => 1.0 - b).ToArray();
        AlphasCumprod = CumulativeProduct(alphas);
        AlphasCumprodPrev = [1.0, .. AlphasCumprod[..^1]];
        var posteriorVariance = new double[steps];
        PosteriorMeanCoef1 = new double[steps];
        PosteriorMeanCoef2 = new double[steps];
        for (int k = 0; k < steps; k++)
        {
            posteriorVariance[k] = Betas[k] * (1.0 - AlphasCumprodPrev[k]) / (1.0 - AlphasCumprod[k]);
            PosteriorMeanCoef1[k] = Betas[k] * Math.Sqrt(AlphasCumprodPrev[k]) / (1.0 - AlphasCumprod[k]);
            PosteriorMeanCoef2[k] = (1.0 - AlphasCumprodPrev[k]) * Math.Sqrt(alphas[k]) / (1.0 - AlphasCumprod[k]);
        }
        // log of the posterior variance with index 0 replaced by index 1 (it is 0 there).
        PosteriorLogVarianceClipped = posteriorVariance
            .Select((v, k) => Math.Log(k == 0 && steps > 1 ? posteriorVariance[1] : v)).ToArray();
    }

    public int Steps { get; }

    /// <summary>Original-scale timestep (0 … 999) of respaced index i, ascending; the model is called with these.</summary>
    public int[] TimestepMap { get; }
    public double[] Betas { get; }
    public double[] AlphasCumprod { get; }
    public double[] AlphasCumprodPrev { get; }
    public double[] PosteriorMeanCoef1 { get; }
    public double[] PosteriorMeanCoef2 { get; }
    public double[] PosteriorLogVarianceClipped { get; }

    /// <summary><c>np.linspace(1e-4, 0.02, n)</c> in float64: <c>i·step + start</c>, the last value exactly the end.</summary>
    public static double[] LinearBetas(int n)
    {
        const double start = 0.0001, end = 0.02;
        double step = (end - start) / (n - 1);
        var betas = new double[n];
        for (int i = 0; i < n; i++)
            betas[i] = i * step + start;
        betas[n - 1] = end;
        return betas;
    }

    /// <summary>
    /// <c>space_timesteps(num_timesteps, "steps")</c> for one section: a fractional stride <c>(n−1)/(steps−1)</c>
    /// accumulated by repeated float addition and rounded half-to-even (Python's round). 50 → 0, 20, 41, 61, 82, …, 979, 999.
    /// </summary>
    public static int[] SpaceTimesteps(int numTimesteps, int steps)
    {
        double stride = steps <= 1 ? 1 : (numTimesteps - 1) / (double)(steps - 1);
        var taken = new SortedSet<int>();
        double cur = 0;
        for (int k = 0; k < steps; k++)
        {
            taken.Add((int)Math.Round(cur, MidpointRounding.ToEven));
            cur += stride;
        }
        return [.. taken];
    }

    private static double[] CumulativeProduct(double[] values)
    {
        var result = new double[values.Length];
        double p = 1.0;
        for (int i = 0; i < values.Length; i++)
            result[i] = p *= values[i];
        return result;
    }

    /// <summary>DDIM scalars of <c>ddim_sample</c> at respaced index i (float32 formulas as PyTorch evaluates them).</summary>
    public DdimCoefficients Ddim(int i, float eta)
    {
        float alphaBar = (float)AlphasCumprod[i], alphaBarPrev = (float)AlphasCumprodPrev[i];
        float sigma = eta * MathF.Sqrt((1f - alphaBarPrev) / (1f - alphaBar)) * MathF.Sqrt(1f - alphaBar / alphaBarPrev);
        return new DdimCoefficients(
            A: (float)Math.Sqrt(1.0 / AlphasCumprod[i]),
            B: (float)Math.Sqrt(1.0 / AlphasCumprod[i] - 1),
            C: MathF.Sqrt(alphaBarPrev),
            D: MathF.Sqrt(1f - alphaBarPrev - sigma * sigma),
            E: i != 0 ? sigma : 0f,
            RederiveEps: true);
    }

    /// <summary>Scalars of <c>p_sample</c> with the LEARNED_RANGE variance at respaced index i.</summary>
    public AncestralCoefficients Ancestral(int i) => new(
        A: (float)Math.Sqrt(1.0 / AlphasCumprod[i]),
        B: (float)Math.Sqrt(1.0 / AlphasCumprod[i] - 1),
        C1: (float)PosteriorMeanCoef1[i],
        C2: (float)PosteriorMeanCoef2[i],
        MinLog: (float)PosteriorLogVarianceClipped[i],
        MaxLog: (float)Math.Log(Betas[i]),
        Nonzero: i != 0 ? 1f : 0f);
}

/// <summary>
/// diffusers' <c>DDIMScheduler</c> with its defaults for DiT (model-spec §2.3): float32 betas from
/// <c>torch.linspace(1e-4, 0.02, 1000)</c>, ᾱ from <c>torch.cumprod</c> (double accumulator, float32 results),
/// "leading" spacing <c>t = k·(1000 // S)</c> visited in descending order, and ᾱ_prev = 1 past the end (set_alpha_to_one):
/// https://github.com/huggingface/diffusers/blob/58eb52c0/src/diffusers/schedulers/scheduling_ddim.py
/// </summary>
internal sealed class LeadingDdimSchedule
{
    public LeadingDdimSchedule(int steps)
    {
        if (steps < 1 || steps > RespacedDiffusion.TrainingSteps)
            throw new ArgumentOutOfRangeException(nameof(steps), $"steps must be in [1, {RespacedDiffusion.TrainingSteps}], not {steps}");
        Steps = steps;
        StepRatio = RespacedDiffusion.TrainingSteps / steps;
        AlphasCumprod = Float32AlphasCumprod(RespacedDiffusion.TrainingSteps);
        Timesteps = Enumerable.Range(0, steps).Select(k => (steps - 1 - k) * StepRatio).ToArray();
    }

    public int Steps { get; }
    public int StepRatio { get; }
    public float[] AlphasCumprod { get; }

    /// <summary>Model timesteps in sampling order (50 steps: 980, 960, …, 0).</summary>
    public int[] Timesteps { get; }

    /// <summary>torch.linspace(1e-4, 0.02, n, float32): the symmetric float formula of PyTorch's CPU kernel.</summary>
    public static float[] Float32Betas(int n)
    {
        const float start = 0.0001f, end = 0.02f;
        float step = (end - start) / (n - 1);
        int halfway = n / 2;
        var betas = new float[n];
        for (int i = 0; i < n; i++)
            betas[i] = i < halfway ? start + step * i : end - step * (n - i - 1);
        return betas;
    }

    private static float[] Float32AlphasCumprod(int n)
    {
        var betas = Float32Betas(n);
        var result = new float[n];
        double p = 1.0;
        for (int i = 0; i < n; i++)
        {
            p *= 1f - betas[i];
            result[i] = (float)p;
        }
        return result;
    }

    /// <summary>Scalars of <c>DDIMScheduler.step</c> at sampling step k (0 = noisiest).</summary>
    public DdimCoefficients Ddim(int k, float eta)
    {
        int t = Timesteps[k], prev = t - StepRatio;
        float alphaBar = AlphasCumprod[t], alphaBarPrev = prev >= 0 ? AlphasCumprod[prev] : 1f;
        float betaBar = 1f - alphaBar, betaBarPrev = 1f - alphaBarPrev;
        float variance = betaBarPrev / betaBar * (1f - alphaBar / alphaBarPrev);
        float std = eta * MathF.Sqrt(variance);
        return new DdimCoefficients(
            A: MathF.Sqrt(alphaBar),
            B: MathF.Sqrt(betaBar),
            C: MathF.Sqrt(alphaBarPrev),
            D: MathF.Sqrt(1f - alphaBarPrev - std * std),
            E: std,
            RederiveEps: false);
    }
}
