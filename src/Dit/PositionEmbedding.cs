namespace BlockDance.Dit;

/// <summary>
/// The fixed 2-D sin-cos position embedding of DiT (from MAE), computed in float64 and rounded to float32 like the
/// numpy original (model-spec §1.8):
/// https://github.com/facebookresearch/DiT/blob/ed81ce2229091fd4ecc9a223645f95cf379d582b/models.py#L298-L347
/// For the token in row r, column c of the patch grid, with ω_k = 10000^(−k/(D/4)), k = 0 … D/4−1:
/// <c>[sin(c·ω) | cos(c·ω) | sin(r·ω) | cos(r·ω)]</c>. Note the column coordinate comes first ("w goes first" in
/// <c>np.meshgrid(grid_w, grid_h)</c>) and the order is sin then cos, the opposite of the timestep embedding.
/// </summary>
internal static class PositionEmbedding
{
    /// <summary>Row-major [gridH·gridW, D] float32 values.</summary>
    /// <param name="baseSize">
    /// diffusers' <c>PatchEmbed</c> at a grid other than its native one: coordinates become
    /// <c>arange(n) / (n / baseSize) / interpolationScale</c>, computed in float32 as numpy does
    /// (<c>get_2d_sincos_pos_embed(..., base_size, interpolation_scale)</c>). Null: the plain integer coordinates of the
    /// original DiT (which only ever builds the table for its own size).
    /// </param>
    public static float[] SinCos2D(int d, int gridH, int gridW, int? baseSize = null, int interpolationScale = 1)
    {
        if (d % 4 != 0)
            throw new ArgumentException($"the 2-D sin-cos embedding needs D divisible by 4, not {d}");
        if (gridH <= 0 || gridW <= 0 || (long)gridH * gridW * d > Array.MaxLength)
            throw new ArgumentException($"a {gridH}×{gridW} grid of {d} features is not a valid position embedding");
        double Coordinate(int i, int n) => baseSize is int b ? (float)((float)i / (float)((double)n / b)) / (float)interpolationScale : i;
        int quarter = d / 4;
        var omega = new double[quarter];
        for (int k = 0; k < quarter; k++)
            omega[k] = 1.0 / Math.Pow(10000.0, k / (double)quarter);
        var result = new float[gridH * gridW * d];
        for (int r = 0; r < gridH; r++)
            for (int c = 0; c < gridW; c++)
            {
                int at = (r * gridW + c) * d;
                double cx = Coordinate(c, gridW), ry = Coordinate(r, gridH);
                for (int k = 0; k < quarter; k++)
                {
                    double x = cx * omega[k], y = ry * omega[k];
                    result[at + k] = (float)Math.Sin(x);
                    result[at + quarter + k] = (float)Math.Cos(x);
                    result[at + 2 * quarter + k] = (float)Math.Sin(y);
                    result[at + 3 * quarter + k] = (float)Math.Cos(y);
                }
            }
        return result;
    }
}
