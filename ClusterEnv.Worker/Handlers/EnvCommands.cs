using System.Diagnostics;
using System.Runtime.InteropServices;
using ClusterEnv.Transport;
using ClusterEnv.Transport.Protos;
using ClusterEnv.Vector;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using ResetOptions = ClusterEnv.Envs.ResetOptions;

namespace ClusterEnv.Worker.Handlers;

/// <summary>Welcome, reset and step (the central-inference path: the step is the hot path, encoded without allocation).</summary>
internal sealed class EnvCommands(HostedEnvs envs, HubClient hub, ILogger logger, string workerId)
{
    private int[] _intActions = [];
    private float[] _floatActions = [];

    public void OnWelcome(Welcome welcome)
    {
        envs.Welcome(welcome);
        hub.MaxReplySize = welcome.MaxMessageSize;
        if (welcome.ShmChannel.Length > 0) hub.UseSharedMemory(welcome.ShmChannel);
        var layout = ActionLayout.For(envs.Vec.SingleActionSpace);
        if (layout.IsContinuous) _floatActions = new float[envs.Vec.NumEnvs * layout.Size];
        else _intActions = new int[envs.Vec.NumEnvs * layout.Size];
    }

    public void OnReset(ulong seq, ResetCommand cmd)
    {
        var vec = envs.Vec;
        var seeds = new long?[vec.NumEnvs];
        for (int i = 0; i < seeds.Length && i < cmd.HasSeed.Count; i++) seeds[i] = cmd.HasSeed[i] ? cmd.Seeds[i] : null;
        ResetOptions? options = null;
        if (cmd.Mask.Count > 0 || cmd.Numbers.Count > 0 || cmd.Strings.Count > 0)
        {
            options = new ResetOptions();
            foreach (var (k, v) in cmd.Numbers) options[k] = v;
            foreach (var (k, v) in cmd.Strings) options[k] = v;
            if (cmd.Mask.Count > 0) options.ResetMask = cmd.Mask.ToArray();
        }
        var r = vec.Reset(seeds, options);
        envs.ResetTo(r.Observations);
        var obsType = ObservationCodec.WireTypeOf(vec.SingleObservationSpace);
        var result = new ResetResult { Observations = Tensors.Of(obsType, [vec.NumEnvs, vec.ObservationSize], obsType == DType.Uint8 ? vec.ObservationBytes : MemoryMarshal.AsBytes(r.Observations.AsSpan())) };
        if (r.Info.Episode.Any) result.Episode = Tensors.Stats(r.Info.Episode);
        result.Info.AddRange(InfoCodec.Encode(r.Info, InfoDropped));
        hub.Reply(seq, new WorkerMessage { Reset = result });
    }

    private void InfoDropped(string reason) => WorkerLog.InfoDropped(logger, workerId, reason);

    public void OnStep(ulong seq, ReadOnlySpan<byte> body)
    {
        var vec = envs.Vec;
        StepCodec.ReadStepCommand(body, _intActions, _floatActions);
        var r = _floatActions.Length > 0 ? vec.Step(_floatActions) : vec.Step(_intActions);
        envs.SteppedTo(r); // the actor continues from here if a rollout comes next
        var info = r.Info.HasExtra ? InfoCodec.ToField(InfoCodec.Encode(r.Info, InfoDropped), StepResult.InfoFieldNumber) : [];
        var obsType = ObservationCodec.WireTypeOf(vec.SingleObservationSpace);
        int size = StepCodec.StepResultSize(seq, r, vec.ObservationSize, info, obsType);
        var dest = hub.Reserve(size);
        int written = StepCodec.WriteStepResult(dest, seq, r, vec.ObservationSize, info, obsType, obsType == DType.Uint8 ? vec.ObservationBytes : default);
        Debug.Assert(written == size);
    }
}

/// <summary>Tensors and episode statistics as the wire carries them (dtype + shape + raw little-endian bytes).</summary>
internal static class Tensors
{
    public static Tensor Of(DType dtype, long[] shape, ReadOnlySpan<byte> data)
    {
        var t = new Tensor { Dtype = dtype, Data = ByteString.CopyFrom(data) };
        t.Shape.AddRange(shape);
        return t;
    }

    public static EpisodeStats Stats(EpisodeBatch b) => new()
    {
        Mask = Of(DType.Bool, [b.Mask.Length], MemoryMarshal.AsBytes(b.Mask.AsSpan())),
        Returns = Of(DType.Float64, [b.Mask.Length], MemoryMarshal.AsBytes(b.Return.AsSpan())),
        Lengths = Of(DType.Int64, [b.Mask.Length], MemoryMarshal.AsBytes(b.Length.Select(l => (long)l).ToArray().AsSpan())),
        Seconds = Of(DType.Float64, [b.Mask.Length], MemoryMarshal.AsBytes(b.Seconds.AsSpan())),
    };
}
