namespace ClusterEnv.Spaces;

/// <summary>Element type of a space's values, as NumPy names them. Buffers in this library are float32 or int32
/// (a float64 Box's values are rounded to float32 in them); the dtype says what the values mean and what travels on
/// the wire.</summary>
public enum DType
{
    /// <summary>32-bit IEEE float (Box default).</summary>
    Float32,
    /// <summary>64-bit signed integer (Discrete, MultiDiscrete and integer Box, as in Gymnasium).</summary>
    Int64,
    /// <summary>8-bit signed integer (MultiBinary).</summary>
    Int8,
    /// <summary>8-bit unsigned integer (images).</summary>
    UInt8,
    /// <summary>64-bit IEEE float (Gymnasium's <c>Box(..., dtype=np.float64)</c>).</summary>
    Float64,
}
