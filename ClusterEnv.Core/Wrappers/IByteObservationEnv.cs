using ClusterEnv.Envs;
using ClusterEnv.Spaces;

namespace ClusterEnv.Wrappers;

/// <summary>
/// An env whose observations are images (a uint8 Box) and that can write them as bytes: what the image wrappers pass
/// between them, so a 400×600 RGB frame is rendered, grayed and shrunk as bytes and only the final (stack, 84, 84)
/// image is widened to the float32 slots of <see cref="IEnv"/>. The float32 <see cref="IEnv.Reset"/> and
/// <see cref="IEnv.Step"/> give the same values.
/// </summary>
public interface IByteObservationEnv : IEnv
{
    /// <summary><see cref="IEnv.Reset"/> with the observation written as bytes (<c>ObservationSpace.EncodedSize</c> of them).</summary>
    EnvInfo ResetBytes(Span<byte> observation, long? seed = null, ResetOptions? options = null);

    /// <summary><see cref="IEnv.Step"/> with the observation written as bytes.</summary>
    StepResult StepBytes(EnvAction action, Span<byte> observation);
}

/// <summary>Image wrappers' common part: a transform of the wrapped env's image, in bytes when the wrapped env writes bytes.</summary>
public abstract class ImageWrapper : EnvWrapper, IByteObservationEnv
{
    private readonly IByteObservationEnv? _byteInner;
    private readonly byte[] _input, _output;
    private readonly float[]? _inputFloats;

    /// <summary>Wraps <paramref name="env"/>, whose observations are <paramref name="inputSize"/> values; this wrapper's are <paramref name="outputSize"/>.</summary>
    protected ImageWrapper(IEnv env, int inputSize, int outputSize) : base(env)
    {
        _byteInner = ByteObservations.Of(env);
        _input = new byte[inputSize];
        _output = new byte[outputSize];
        if (_byteInner is null) _inputFloats = new float[inputSize];
    }

    /// <summary>The wrapper's transform of one image.</summary>
    protected abstract void Transform(ReadOnlySpan<byte> input, Span<byte> output);

    /// <inheritdoc />
    public EnvInfo ResetBytes(Span<byte> observation, long? seed = null, ResetOptions? options = null)
    {
        EnvInfo info;
        if (_byteInner is not null) info = _byteInner.ResetBytes(_input, seed, options);
        else
        {
            info = Env.Reset(_inputFloats, seed, options);
            Pixels.ToBytes(_inputFloats, _input);
        }
        Transform(_input, observation);
        return info;
    }

    /// <inheritdoc />
    public StepResult StepBytes(EnvAction action, Span<byte> observation)
    {
        StepResult r;
        if (_byteInner is not null) r = _byteInner.StepBytes(action, _input);
        else
        {
            r = Env.Step(action, _inputFloats);
            Pixels.ToBytes(_inputFloats, _input);
        }
        Transform(_input, observation);
        return r;
    }

    /// <inheritdoc />
    public override EnvInfo Reset(Span<float> observation, long? seed = null, ResetOptions? options = null)
    {
        var info = ResetBytes(_output, seed, options);
        Pixels.ToFloat(_output, observation);
        return info;
    }

    /// <inheritdoc />
    public override StepResult Step(EnvAction action, Span<float> observation)
    {
        var r = StepBytes(action, _output);
        Pixels.ToFloat(_output, observation);
        return r;
    }
}

/// <summary>Finding the byte path of an env.</summary>
public static class ByteObservations
{
    /// <summary><paramref name="env"/> as an <see cref="IByteObservationEnv"/> when it is one and observes a uint8 Box; else null.</summary>
    public static IByteObservationEnv? Of(IEnv env) =>
        env is IByteObservationEnv b && env.ObservationSpace is Box { DType: DType.UInt8 } ? b : null;
}
