using System.Diagnostics;
using ClusterEnv.Envs;
using ClusterEnv.Envs.Mujoco;
using ClusterEnv.Spaces;
using ClusterEnv.Tests.Cluster;
using ClusterEnv.Vector;
using ClusterEnv.Wrappers;

namespace ClusterEnv.Tests.Envs;

/// <summary>
/// The MuJoCo locomotion envs on Debian's libmujoco 2.2.2 (installed by .ci/run). Without the library every test here
/// is skipped, saying so; the refusal itself is tested either way.
/// </summary>
public class MujocoTests
{
    [SetUp]
    public void RequireMujoco()
    {
        if (TestContext.CurrentContext.Test.MethodName is nameof(MissingLibrary_IsRefusedNamingThePackage)) return;
        if (MujocoSimulation.UnavailableReason is string reason) Assert.Ignore($"MuJoCo is not installed here: {reason}");
    }

    private static float[] Obs(IEnv env) => new float[env.ObservationSpace.EncodedSize];

    [Test]
    public void MissingLibrary_IsRefusedNamingThePackage()
    {
        string? reason = MujocoNative.Probe(["libmujoco-not-here.so.9"]);
        Assert.That(reason, Does.Contain("libmujoco2.2.2").And.Contain("apt-get install").And.Contain("CLUSTERENV_MUJOCO_LIB"));
    }

    [Test]
    public void StructLayout_MatchesTheInstalledHeaders()
    {
        const string header = "/usr/include/mujoco/mujoco.h";
        if (!File.Exists(header)) Assert.Ignore($"{header} is missing (apt-get install libmujoco-dev) so the offsets cannot be compiled.");
        string dir = Directory.CreateTempSubdirectory("mjlayout").FullName;
        try
        {
            var lines = MujocoNative.Layout.All.Select(f => $"  printf(\"%ld\\n\", (long)({f.Expression}));");
            File.WriteAllText(Path.Combine(dir, "l.c"), "#include <stdio.h>\n#include <stddef.h>\n#include <mujoco/mujoco.h>\nint main(void) {\n" + string.Join("\n", lines) + "\n  return 0;\n}\n");
            Run("gcc", $"{dir}/l.c -o {dir}/l", out _);
            Run($"{dir}/l", "", out var output);
            var compiled = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
            Assert.That(compiled, Is.EqualTo(MujocoNative.Layout.All.Select(f => f.Offset).ToArray()),
                string.Join(", ", MujocoNative.Layout.All.Select(f => f.Expression)));
        }
        finally { Directory.Delete(dir, true); }
    }

    private static void Run(string file, string args, out string stdout)
    {
        Process p;
        try { p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true })!; }
        catch (System.ComponentModel.Win32Exception) { Assert.Ignore($"{file} is not installed."); stdout = ""; return; }
        stdout = p.StandardOutput.ReadToEnd();
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.That(p.ExitCode, Is.Zero, $"{file} {args}: {err}");
    }

    // Gymnasium v5's shapes, control ranges and dt for the default models.
    [TestCase("HalfCheetah-v5", 17, 6, 1.0, 0.05, 4800.0)]
    [TestCase("Hopper-v5", 11, 3, 1.0, 0.008, 3800.0)]
    [TestCase("Walker2d-v5", 17, 6, 1.0, 0.008, null)]
    [TestCase("Ant-v5", 105, 8, 1.0, 0.05, 6000.0)]
    [TestCase("Humanoid-v5", 348, 17, 0.4, 0.015, null)]
    public void Make_HasGymnasiumSpacesDtAndLimits(string id, int obs, int act, double ctrl, double dt, double? threshold)
    {
        using var env = Gym.Make(id);
        Assert.That(env.ObservationSpace, Is.EqualTo(new Box(double.NegativeInfinity, double.PositiveInfinity, [obs], DType.Float64)));
        Assert.That(env.ActionSpace, Is.EqualTo(new Box((float)-ctrl, (float)ctrl, [act])));
        Assert.That(((MujocoEnv)env.Unwrapped()).Dt, Is.EqualTo(dt).Within(1e-12));
        Assert.That((env.Spec!.MaxEpisodeSteps, env.Spec.RewardThreshold), Is.EqualTo(((int?)1000, threshold)));
    }

    [TestCase("HalfCheetah-v5")]
    [TestCase("Hopper-v5")]
    [TestCase("Walker2d-v5")]
    [TestCase("Ant-v5")]
    [TestCase("Humanoid-v5")]
    public void SameSeed_SameTrajectory_AndRewardIsTheSumOfItsTerms(string id)
    {
        using var a = Gym.Make(id);
        using var b = Gym.Make(id);
        float[] oa = Obs(a), ob = Obs(b);
        var info = a.Reset(oa, seed: 5);
        b.Reset(ob, seed: 5);
        Assert.That(oa, Is.EqualTo(ob));
        Assert.That(info.Extra!.ContainsKey("x_position"), Is.True);
        var rng = new ClusterEnv.Common.Rng(9);
        var action = new float[a.ActionSpace.EncodedSize];
        var high = ((Box)a.ActionSpace).High;
        for (int t = 0; t < 40; t++)
        {
            for (int i = 0; i < action.Length; i++) action[i] = (float)rng.Uniform(-high[i], high[i]);
            var r = a.Step(action, oa);
            var s = b.Step(action, ob);
            Assert.That(oa, Is.EqualTo(ob), $"step {t}");
            Assert.That(r.Reward, Is.EqualTo(s.Reward));
            var x = r.Info.Extra!;
            double terms = x.Where(kv => kv.Key.StartsWith("reward_", StringComparison.Ordinal)).Sum(kv => (double)kv.Value);
            Assert.That(r.Reward, Is.EqualTo(terms).Within(1e-9), string.Join(", ", x.Keys));
            double ctrlWeight = id switch { "HalfCheetah-v5" or "Humanoid-v5" => 0.1, "Ant-v5" => 0.5, _ => 1e-3 };
            Assert.That((double)x["reward_ctrl"], Is.EqualTo(-ctrlWeight * action.Sum(v => (double)v * v)).Within(1e-12));
            if (r.Terminated) break;
        }
        Assert.That(oa.All(float.IsFinite), Is.True);
    }

    [Test]
    public void HalfCheetah_ForwardRewardIsTheRootsVelocity_AndItNeverTerminates()
    {
        using var env = new HalfCheetah();
        var o = Obs(env);
        double x = (double)env.Reset(o, seed: 1).Extra!["x_position"];
        var rng = new ClusterEnv.Common.Rng(3);
        var action = new float[6];
        for (int t = 0; t < 300; t++)
        {
            for (int i = 0; i < 6; i++) action[i] = (float)rng.Uniform(-1, 1);
            var r = env.Step(action, o);
            double after = (double)r.Info.Extra!["x_position"];
            Assert.That((double)r.Info.Extra["x_velocity"], Is.EqualTo((after - x) / 0.05).Within(1e-9));
            Assert.That((double)r.Info.Extra["reward_forward"], Is.EqualTo((after - x) / 0.05).Within(1e-9));
            Assert.That(r.Terminated || r.Truncated, Is.False);
            // The observation is qpos[1:] then qvel: its first value is the root's height.
            Assert.That(o[0], Is.EqualTo((float)env.Simulation.Qpos[1]));
            Assert.That(o[8], Is.EqualTo((float)env.Simulation.Qvel[0]));
            x = after;
        }
    }

    [Test]
    public void Hopper_ResetNoiseStaysInItsScale_AndFallingTerminates()
    {
        using var env = new Hopper();
        var o = Obs(env);
        env.Reset(o, seed: 4);
        var init = env.Simulation.Qpos0.ToArray();
        for (int i = 0; i < init.Length; i++) Assert.That(Math.Abs(env.Simulation.Qpos[i] - init[i]), Is.LessThanOrEqualTo(0.005 + 1e-15));
        foreach (double v in env.Simulation.Qvel) Assert.That(Math.Abs(v), Is.LessThanOrEqualTo(0.005 + 1e-15));
        Assert.That(env.IsHealthy, Is.True);

        // Full thrust on every joint topples it; it ends the step it is no longer healthy, and not before.
        int steps = 0;
        StepResult r;
        do
        {
            r = env.Step(new float[] { 1, 1, 1 }, o);
            steps++;
            double z = env.Simulation.Qpos[1], angle = env.Simulation.Qpos[2];
            bool expectHealthy = z > 0.7 && Math.Abs(angle) < 0.2 && o.Skip(1).All(v => Math.Abs(v) < 100);
            Assert.That(r.Terminated, Is.EqualTo(!expectHealthy), $"step {steps}: z={z}, angle={angle}");
            Assert.That((double)r.Info.Extra!["reward_survive"], Is.EqualTo(expectHealthy ? 1.0 : 0.0));
        } while (!r.Terminated && steps < 1000);
        Assert.That(r.Terminated, Is.True, "it fell within 1000 steps");

        using var stubborn = Gym.Make("Hopper-v5", new Dictionary<string, object> { ["terminate_when_unhealthy"] = false });
        var s = Obs(stubborn);
        stubborn.Reset(s, seed: 4);
        for (int t = 0; t < steps + 20; t++) Assert.That(stubborn.Step(new float[] { 1, 1, 1 }, s).Terminated, Is.False);
    }

    [Test]
    public void Ant_ContactForcesAreClippedInTheObservation_AndOptional()
    {
        using var env = new Ant();
        var o = Obs(env);
        env.Reset(o, seed: 2);
        for (int t = 0; t < 30; t++) env.Step(new float[8], o); // it lands on the floor: contact forces appear
        var forces = o.AsSpan(27).ToArray();
        Assert.That(forces.All(f => f is >= -1 and <= 1), Is.True);
        Assert.That(forces.Any(f => f != 0), Is.True, "the legs touch the floor");
        Assert.That(env.Simulation.CfrcExt.ToArray().Any(f => Math.Abs(f) > 1), Is.True, "raw forces exceed the clip range");

        using var without = Gym.Make("Ant-v5", new Dictionary<string, object> { ["include_cfrc_ext_in_observation"] = false, ["exclude_current_positions_from_observation"] = false });
        Assert.That(without.ObservationSpace.EncodedSize, Is.EqualTo(15 + 14));
    }

    [Test]
    public void Humanoid_StandsInRangeAtReset_AndFallsWithoutControl()
    {
        using var env = new Humanoid();
        var o = Obs(env);
        env.Reset(o, seed: 7);
        Assert.That(env.IsHealthy, Is.True);
        int t = 0;
        StepResult r;
        do r = env.Step(new float[17], o); while (!r.Terminated && ++t < 1000);
        Assert.That(r.Terminated, Is.True, "a limp humanoid falls");
        Assert.That(env.Simulation.Qpos[2], Is.LessThanOrEqualTo(1.0));
        Assert.That((double)r.Info.Extra!["reward_contact"], Is.LessThanOrEqualTo(0).And.GreaterThanOrEqualTo(-10));
    }

    [Test]
    public void XmlFile_LoadsTheUsersModel_AndBadModelsAreRefusedByName()
    {
        string dir = Directory.CreateTempSubdirectory("mjxml").FullName;
        try
        {
            // The user's own variant of the cheetah: a finer timestep changes dt.
            using (var s = typeof(MujocoSimulation).Assembly.GetManifestResourceStream("ClusterEnv.Mujoco.Models.half_cheetah.xml")!)
            using (var reader = new StreamReader(s))
                File.WriteAllText(Path.Combine(dir, "fine.xml"), reader.ReadToEnd().Replace("timestep=\"0.01\"", "timestep=\"0.005\""));
            using (var env = Gym.Make("HalfCheetah-v5", new Dictionary<string, object> { ["xml_file"] = Path.Combine(dir, "fine.xml") }))
                Assert.That(((MujocoEnv)env.Unwrapped()).Dt, Is.EqualTo(0.025).Within(1e-12));

            var missing = Assert.Throws<FileNotFoundException>(() => Gym.Make("Hopper-v5", new Dictionary<string, object> { ["xml_file"] = "/no/such/hopper.xml" }));
            Assert.That(missing!.Message, Does.Contain("/no/such/hopper.xml").And.Contain("hopper.xml"));
            var unknown = Assert.Throws<ArgumentException>(() => Gym.Make("Hopper-v5", new Dictionary<string, object> { ["xml_file"] = "hoper.xml" }));
            Assert.That(unknown!.Message, Does.Contain("'hoper.xml'").And.Contain("hopper.xml").And.Contain("starting with '/'"));
            File.WriteAllText(Path.Combine(dir, "broken.xml"), "<mujoco><worldbody><body><geom type=\"nonsense\"/></body></worldbody></mujoco>");
            var broken = Assert.Throws<MujocoException>(() => new HalfCheetah(Path.Combine(dir, "broken.xml")));
            Assert.That(broken!.Message, Does.Contain("broken.xml").And.Contain("nonsense"));
            File.WriteAllText(Path.Combine(dir, "still.xml"), "<mujoco><worldbody><body><joint type=\"slide\"/><geom size=\".1\"/></body></worldbody></mujoco>");
            Assert.That(() => new HalfCheetah(Path.Combine(dir, "still.xml")), Throws.ArgumentException.With.Message.Contains("no actuators"));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Test]
    public void Arguments_AreCheckedByName()
    {
        Assert.That(() => Gym.Make("Ant-v5", new Dictionary<string, object> { ["ctrl_cost"] = 0.1 }),
            Throws.ArgumentException.With.Message.Contains("'ctrl_cost'").And.Message.Contains("ctrl_cost_weight"));
        Assert.That(() => Gym.Make("Hopper-v5", new Dictionary<string, object> { ["render_mode"] = "rgb_array" }),
            Throws.ArgumentException.With.Message.Contains("OpenGL"));
        Assert.That(() => Gym.Make("Walker2d-v5", new Dictionary<string, object> { ["healthy_z_range"] = new[] { 2.0, 0.8 } }),
            Throws.ArgumentException.With.Message.Contains("low <= high"));
        Assert.That(() => Gym.Make("HalfCheetah-v5", new Dictionary<string, object> { ["frame_skip"] = 0 }),
            Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("frame_skip"));
        Assert.That(() => new Ant(mainBody: "tail"), Throws.ArgumentException.With.Message.Contains("no body named 'tail'"));
        using var env = Gym.Make("Walker2d-v5", new Dictionary<string, object> { ["healthy_z_range"] = new object[] { 0.5, 3 }, ["frame_skip"] = 2 });
        Assert.That(((MujocoEnv)env.Unwrapped()).Dt, Is.EqualTo(0.004).Within(1e-12));
        var o = Obs(env);
        env.Reset(o, seed: 1);
        Assert.That(() => env.Step(new float[] { float.NaN, 0, 0, 0, 0, 0 }, o), Throws.ArgumentException.With.Message.Contains("finite"));
    }

    [Test]
    public void ThroughWorkers_StepsMatchLocalEnvs()
    {
        var (cluster, workers) = TestCluster.InProcess("Hopper-v5", [2, 1]);
        using (cluster)
        {
            using var local = new SyncVectorEnv(Enumerable.Range(0, 3).Select(_ => (Func<IEnv>)(() => new RecordEpisodeStatistics(Gym.Make("Hopper-v5")))));
            var (a, _) = cluster.Reset(seed: 21);
            var (b, _) = local.Reset(seed: 21);
            Assert.That(a, Is.EqualTo(b), "reset");
            var actions = new float[9];
            var rng = new ClusterEnv.Common.Rng(1);
            for (int t = 0; t < 60; t++)
            {
                for (int i = 0; i < actions.Length; i++) actions[i] = (float)rng.Uniform(-1, 1);
                var x = cluster.Step(actions);
                var y = local.Step(actions);
                Assert.That(x.Observations, Is.EqualTo(y.Observations), $"step {t}");
                Assert.That(x.Rewards, Is.EqualTo(y.Rewards), $"step {t}");
                Assert.That(x.Terminated, Is.EqualTo(y.Terminated), $"step {t}");
            }
        }
        Task.WaitAll(workers, TimeSpan.FromSeconds(20));
    }
}
