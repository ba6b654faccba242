using System.Runtime.InteropServices;
using ClusterEnv.Nn;
using ClusterEnv.Policies.Onnx;
using Google.Protobuf;

namespace ClusterEnv.Policies;

/// <summary>
/// Writes an <see cref="ActorCritic"/> as an ONNX model (IR 8, opset 17), to act with it outside .NET (ONNX Runtime,
/// PyTorch, a game engine). Inputs and outputs, with a free batch dimension:
/// <list type="bullet">
/// <item><c>observation</c> float32 (batch, observation size): raw observations; the policy's
/// <see cref="ActorCritic.Normalizer"/>, if any, is part of the graph.</item>
/// <item>Discrete actions: <c>logits</c> float32 (batch, n) and <c>action</c> int64 (batch), the most likely action.</item>
/// <item>Continuous actions: <c>action_mean</c> float32 (batch, k), <c>action</c> (the mean, unclipped, as
/// <see cref="ActorCritic.Act"/> deterministic gives it) and <c>log_std</c> float32 (k).</item>
/// <item><c>value</c> float32 (batch, 1): the critic, with the policy's <see cref="ActorCritic.ValueScale"/> applied.</item>
/// </list>
/// </summary>
public static class OnnxExport
{
    /// <summary>The ONNX IR version written.</summary>
    public const int IrVersion = 8;

    /// <summary>The default-domain operator set the graph uses.</summary>
    public const int Opset = 17;

    /// <summary>Writes <paramref name="policy"/> to <paramref name="path"/> (created or replaced).</summary>
    /// <param name="policy">The policy.</param>
    /// <param name="path">Destination file, e.g. <c>policy.onnx</c>.</param>
    /// <param name="metadata">Key-value pairs stored in the model's <c>metadata_props</c> (e.g. the env id).</param>
    public static void Write(ActorCritic policy, string path, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentException.ThrowIfNullOrEmpty(path);
        var bytes = ToModel(policy, metadata).ToByteArray();
        string temp = path + ".tmp";
        File.WriteAllBytes(temp, bytes);
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>The ONNX model of <paramref name="policy"/> as bytes.</summary>
    public static byte[] ToBytes(ActorCritic policy, IReadOnlyDictionary<string, string>? metadata = null) =>
        ToModel(policy, metadata).ToByteArray();

    private static ModelProto ToModel(ActorCritic policy, IReadOnlyDictionary<string, string>? metadata)
    {
        var spec = policy.Spec;
        var g = new GraphProto { Name = "actor_critic", DocString = $"ClusterEnv ActorCritic {spec.ToJson()}" };
        g.Input.Add(Value("observation", TensorProto.Types.DataType.Float, "batch", spec.ObservationSize));

        string x = "observation";
        if (policy.Normalizer is { } n)
        {
            // clip((x - mean) * scale, -clip, clip), as ObservationNormalizer computes it.
            g.Initializer.Add(Floats("obs_mean", n.Mean, n.Mean.Length));
            g.Initializer.Add(Floats("obs_scale", n.Scale, n.Scale.Length));
            g.Initializer.Add(Floats("obs_clip_min", [-n.Clip]));
            g.Initializer.Add(Floats("obs_clip_max", [n.Clip]));
            g.Node.Add(Node("Sub", ["observation", "obs_mean"], "obs_centred"));
            g.Node.Add(Node("Mul", ["obs_centred", "obs_scale"], "obs_scaled"));
            g.Node.Add(Node("Clip", ["obs_scaled", "obs_clip_min", "obs_clip_max"], "obs_normalized"));
            x = "obs_normalized";
        }

        if (policy.Encoder is { } encoder) x = AddEncoder(g, policy, encoder, x);

        string head = AddMlp(g, policy, "actor", x, spec.Continuous ? "action_mean" : "logits");
        g.Output.Add(Value(head, TensorProto.Types.DataType.Float, "batch", spec.ActionSize));
        if (spec.Continuous)
        {
            g.Node.Add(Node("Identity", ["action_mean"], "action"));
            g.Output.Add(Value("action", TensorProto.Types.DataType.Float, "batch", spec.ActionSize));
            g.Initializer.Add(Floats("actor_logstd", policy.LogStd.ToArray(), spec.ActionSize));
            g.Node.Add(Node("Identity", ["actor_logstd"], "log_std"));
            g.Output.Add(Value("log_std", TensorProto.Types.DataType.Float, null, spec.ActionSize));
        }
        else
        {
            var argMax = Node("ArgMax", ["logits"], "action");
            argMax.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
            argMax.Attribute.Add(new AttributeProto { Name = "keepdims", Type = AttributeProto.Types.AttributeType.Int, I = 0 });
            g.Node.Add(argMax);
            g.Output.Add(Value("action", TensorProto.Types.DataType.Int64, "batch"));
        }

        string value = AddMlp(g, policy, "critic", x, policy.ValueScale is null ? "value" : "value_scaled");
        if (policy.ValueScale is var (mean, std))
        {
            g.Initializer.Add(Floats("value_std", [(float)std]));
            g.Initializer.Add(Floats("value_mean", [(float)mean]));
            g.Node.Add(Node("Mul", [value, "value_std"], "value_times_std"));
            g.Node.Add(Node("Add", ["value_times_std", "value_mean"], "value"));
        }
        g.Output.Add(Value("value", TensorProto.Types.DataType.Float, "batch", 1));

        var model = new ModelProto
        {
            IrVersion = IrVersion, ProducerName = "ClusterEnv", ProducerVersion = typeof(OnnxExport).Assembly.GetName().Version?.ToString() ?? "",
            ModelVersion = 1, Graph = g, DocString = "Actor-critic policy exported by ClusterEnv.Policies.OnnxExport.",
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        model.MetadataProps.Add(new StringStringEntryProto { Key = "policy_spec", Value = spec.ToJson() });
        foreach (var (k, v) in metadata ?? new Dictionary<string, string>())
            model.MetadataProps.Add(new StringStringEntryProto { Key = k, Value = v });
        return model;
    }

    // Gemm(x, W, b, transB=1) per layer (W is (out, in) as in PyTorch), with the hidden activation between layers.
    private static string AddMlp(GraphProto g, ActorCritic policy, string name, string input, string output)
    {
        var layers = policy.Store.Parameters.Where(p => p.Name.StartsWith(name + ".", StringComparison.Ordinal)).ToArray();
        int count = layers.Length / 2;
        string x = input;
        for (int l = 0; l < count; l++)
        {
            var w = layers.Single(p => p.Name == $"{name}.{2 * l}.weight");
            var b = layers.Single(p => p.Name == $"{name}.{2 * l}.bias");
            g.Initializer.Add(Floats(w.Name, w.Values.ToArray(), w.Shape));
            g.Initializer.Add(Floats(b.Name, b.Values.ToArray(), b.Shape));
            bool last = l == count - 1;
            string y = last ? output : $"{name}.{2 * l}.out";
            var gemm = Node("Gemm", [x, w.Name, b.Name], y);
            gemm.Attribute.Add(new AttributeProto { Name = "transB", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
            g.Node.Add(gemm);
            x = y;
            if (!last)
            {
                string a = $"{name}.{2 * l + 1}.out";
                g.Node.Add(Node(policy.Spec.Activation == Activation.Tanh ? "Tanh" : "Relu", [x], a));
                x = a;
            }
        }
        return x;
    }

    // The image torso: reshape the flat observation to NCHW, divide by 255, then Conv → Relu per layer, Flatten, Gemm → Relu.
    private static string AddEncoder(GraphProto g, ActorCritic policy, ClusterEnv.Nn.ConvEncoder encoder, string input)
    {
        var e = policy.Spec.Encoder!;
        var shape = new TensorProto { Name = "image_shape", DataType = (int)TensorProto.Types.DataType.Int64 };
        shape.Dims.Add(4);
        shape.RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(new long[] { -1, e.Channels, e.Height, e.Width }.AsSpan()));
        g.Initializer.Add(shape);
        g.Initializer.Add(Floats("pixel_scale", [1f / 255f]));
        g.Node.Add(Node("Reshape", [input, "image_shape"], "image"));
        g.Node.Add(Node("Mul", ["image", "pixel_scale"], "image_scaled"));
        string x = "image_scaled";
        Parameter Param(string name) => policy.Store.Parameters.Single(p => p.Name == name);
        for (int l = 0; l < encoder.Convolutions.Count; l++)
        {
            var conv = encoder.Convolutions[l];
            var (w, b) = (Param($"encoder.{2 * l}.weight"), Param($"encoder.{2 * l}.bias"));
            g.Initializer.Add(Floats(w.Name, w.Values.ToArray(), w.Shape));
            g.Initializer.Add(Floats(b.Name, b.Values.ToArray(), b.Shape));
            var node = Node("Conv", [x, w.Name, b.Name], $"encoder.{2 * l}.out");
            node.Attribute.Add(new AttributeProto { Name = "strides", Type = AttributeProto.Types.AttributeType.Ints, Ints = { conv.Stride, conv.Stride } });
            node.Attribute.Add(new AttributeProto { Name = "kernel_shape", Type = AttributeProto.Types.AttributeType.Ints, Ints = { conv.Kernel, conv.Kernel } });
            g.Node.Add(node);
            g.Node.Add(Node("Relu", [$"encoder.{2 * l}.out"], $"encoder.{2 * l + 1}.out"));
            x = $"encoder.{2 * l + 1}.out";
        }
        g.Node.Add(Node("Flatten", [x], "encoder.flat"));
        int lin = 2 * encoder.Convolutions.Count + 1;
        var (lw, lb) = (Param($"encoder.{lin}.weight"), Param($"encoder.{lin}.bias"));
        g.Initializer.Add(Floats(lw.Name, lw.Values.ToArray(), lw.Shape));
        g.Initializer.Add(Floats(lb.Name, lb.Values.ToArray(), lb.Shape));
        var gemm = Node("Gemm", ["encoder.flat", lw.Name, lb.Name], $"encoder.{lin}.out");
        gemm.Attribute.Add(new AttributeProto { Name = "transB", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
        g.Node.Add(gemm);
        g.Node.Add(Node("Relu", [$"encoder.{lin}.out"], "features"));
        return "features";
    }

    private static NodeProto Node(string op, string[] inputs, string output)
    {
        var node = new NodeProto { OpType = op, Name = $"{op}_{output}" };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        return node;
    }

    private static TensorProto Floats(string name, float[] values, params int[] dims)
    {
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan())) };
        foreach (int d in dims) t.Dims.Add(d);
        return t;
    }

    // A tensor input or output: the first dimension free (batchName) or absent when null, then fixed sizes.
    private static ValueInfoProto Value(string name, TensorProto.Types.DataType type, string? batchName, params int[] dims)
    {
        var shape = new TensorShapeProto();
        if (batchName is not null) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = batchName });
        foreach (int d in dims) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }
}
