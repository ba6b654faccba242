using System.Globalization;
using System.Reflection;
using ClusterEnv.Wrappers;

namespace ClusterEnv.Envs;

/// <summary>No sub-env has an attribute (property, field or method) of the name asked for.</summary>
public sealed class UnknownAttributeException(string message) : ArgumentException(message);

/// <summary>
/// Gymnasium's <c>get_wrapper_attr</c> / <c>set_wrapper_attr</c> for C# envs: an attribute is a public instance
/// property, field or method of the env or of any env it wraps (outermost first). Names match exactly, or
/// Python-style: <c>max_episode_steps</c> finds <c>MaxEpisodeSteps</c> (case and underscores ignored).
/// </summary>
public static class EnvAttributes
{
    private const BindingFlags Public = BindingFlags.Public | BindingFlags.Instance;

    /// <summary>The attribute's value; for a method, the method's result when called without arguments (Gymnasium's <c>call</c>).</summary>
    public static object? Get(IEnv env, string name)
    {
        var (target, member) = Find(env, name);
        return member switch
        {
            PropertyInfo p => p.GetValue(target),
            FieldInfo f => f.GetValue(target),
            _ => throw new UnknownAttributeException($"'{name}' of {Describe(env)} is a method; use Call(\"{name}\", args) to call it."),
        };
    }

    /// <summary>Gymnasium's <c>call</c>: calls the method with <paramref name="args"/> (converted to its parameter types), or returns the attribute's value when it is not a method.</summary>
    public static object? Call(IEnv env, string name, IReadOnlyList<object?> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var (target, member) = Find(env, name, args.Count);
        if (member is not MethodInfo m)
        {
            if (args.Count > 0) throw new ArgumentException($"'{name}' of {Describe(env)} is not a method; it takes no arguments.");
            return member is PropertyInfo p ? p.GetValue(target) : ((FieldInfo)member).GetValue(target);
        }
        var ps = m.GetParameters();
        var converted = new object?[ps.Length];
        for (int i = 0; i < ps.Length; i++)
            converted[i] = i < args.Count ? Convert(args[i], ps[i].ParameterType, name) : ps[i].HasDefaultValue ? ps[i].DefaultValue
                : throw new ArgumentException($"'{name}' of {Describe(env)} needs {ps.Length} argument(s) ({string.Join(", ", ps.Select(p => p.Name))}); got {args.Count}.");
        try { return m.Invoke(target, converted); }
        catch (TargetInvocationException e) when (e.InnerException is not null) { throw e.InnerException; }
    }

    /// <summary>Sets a writable property or field (on the env or the env it wraps that has it).</summary>
    public static void Set(IEnv env, string name, object? value)
    {
        var (target, member) = Find(env, name);
        switch (member)
        {
            case PropertyInfo { CanWrite: true } p when p.SetMethod!.IsPublic: p.SetValue(target, Convert(value, p.PropertyType, name)); break;
            case FieldInfo { IsInitOnly: false, IsLiteral: false } f: f.SetValue(target, Convert(value, f.FieldType, name)); break;
            default: throw new UnknownAttributeException($"'{name}' of {Describe(env)} cannot be set (it is read-only or a method).");
        }
    }

    private static (object Target, MemberInfo Member) Find(IEnv env, string name, int? argCount = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        for (IEnv? e = env; e is not null; e = (e as EnvWrapper)?.Env)
        {
            var type = e.GetType();
            foreach (var exact in new[] { true, false })
            {
                bool Match(MemberInfo m) => exact ? m.Name == name : Normalize(m.Name) == Normalize(name);
                var members = type.GetMembers(Public).Where(m => (m is PropertyInfo p && p.GetIndexParameters().Length == 0) || m is FieldInfo
                    or MethodInfo { IsSpecialName: false, IsGenericMethodDefinition: false }).Where(Match)
                    .Where(m => m is not MethodInfo mi || mi.DeclaringType != typeof(object)).ToArray();
                if (members.Length == 0) continue;
                var pick = members.FirstOrDefault(m => m is not MethodInfo)
                           ?? members.OfType<MethodInfo>().FirstOrDefault(m => argCount is int n && m.GetParameters().Length == n)
                           ?? members[0];
                return (e, pick);
            }
        }
        var names = env.GetType().GetProperties(Public).Select(p => p.Name).Concat(env.GetType().GetFields(Public).Select(f => f.Name)).Distinct().Order();
        throw new UnknownAttributeException($"{Describe(env)} has no attribute '{name}' (searched it and every env it wraps). Its properties: {string.Join(", ", names)}.");
    }

    private static string Normalize(string s) => s.Replace("_", "", StringComparison.Ordinal).ToLowerInvariant();

    private static string Describe(IEnv env) => env.GetType().Name;

    private static object? Convert(object? value, Type type, string name)
    {
        if (value is null) return type.IsValueType && Nullable.GetUnderlyingType(type) is null
            ? throw new ArgumentException($"'{name}' needs a {type.Name}; got nothing (None/null).") : null;
        var target = Nullable.GetUnderlyingType(type) ?? type;
        if (target.IsInstanceOfType(value)) return value;
        try
        {
            if (target.IsEnum) return value is string s ? Enum.Parse(target, s, ignoreCase: true) : Enum.ToObject(target, value);
            if (target.IsArray && value is Array a)
            {
                var el = target.GetElementType()!;
                var result = Array.CreateInstance(el, a.Length);
                for (int i = 0; i < a.Length; i++) result.SetValue(System.Convert.ChangeType(a.GetValue(i), el, CultureInfo.InvariantCulture), i);
                return result;
            }
            return System.Convert.ChangeType(value, target, CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is InvalidCastException or FormatException or OverflowException or ArgumentException)
        {
            throw new ArgumentException($"'{name}' needs a {target.Name}; {value} ({value.GetType().Name}) does not convert to it.", e);
        }
    }
}
